"""The RFC v2 uAPI (May 2025): ``include/uapi/linux/kvm.h`` and ``include/uapi/linux/guestmem.h``
of "1G page support for guest_memfd", plus ``linux/falloc.h``. The ``rfc-v2``, ``fixed`` and
``prealloc`` revisions speak it."""

from __future__ import annotations

import ctypes

from .ioc import _IOWR

GUEST_MEMFD_FLAG_SUPPORT_SHARED = 1 << 0
GUEST_MEMFD_FLAG_INIT_PRIVATE = 1 << 1
GUEST_MEMFD_FLAG_HUGETLB = 1 << 2

GUESTMEM_HUGETLB_FLAG_SHIFT = 58
GUESTMEM_HUGETLB_FLAG_MASK = 0x3F
GUESTMEM_HUGETLB_FLAG_16KB = 14 << 58
GUESTMEM_HUGETLB_FLAG_64KB = 16 << 58
GUESTMEM_HUGETLB_FLAG_512KB = 19 << 58
GUESTMEM_HUGETLB_FLAG_1MB = 20 << 58
GUESTMEM_HUGETLB_FLAG_2MB = 21 << 58
GUESTMEM_HUGETLB_FLAG_8MB = 23 << 58
GUESTMEM_HUGETLB_FLAG_16MB = 24 << 58
GUESTMEM_HUGETLB_FLAG_32MB = 25 << 58
GUESTMEM_HUGETLB_FLAG_256MB = 28 << 58
GUESTMEM_HUGETLB_FLAG_512MB = 29 << 58
GUESTMEM_HUGETLB_FLAG_1GB = 30 << 58
GUESTMEM_HUGETLB_FLAG_2GB = 31 << 58
GUESTMEM_HUGETLB_FLAG_16GB = 34 << 58

KVM_GMEM_IO = 0xAF


class kvm_gmem_convert(ctypes.Structure):
    """``struct kvm_gmem_convert`` (64 bytes): ``error_offset`` is in/out (must be 0 on input)."""

    _fields_ = [("offset", ctypes.c_uint64), ("size", ctypes.c_uint64),
                ("error_offset", ctypes.c_uint64), ("reserved", ctypes.c_uint64 * 5)]


assert ctypes.sizeof(kvm_gmem_convert) == 64

KVM_GMEM_CONVERT_SHARED = _IOWR(KVM_GMEM_IO, 0x41, ctypes.sizeof(kvm_gmem_convert))
KVM_GMEM_CONVERT_PRIVATE = _IOWR(KVM_GMEM_IO, 0x42, ctypes.sizeof(kvm_gmem_convert))
KVM_CAP_GMEM_SHARED_MEM = 240
KVM_CAP_GMEM_CONVERSION = 241
KVM_CAP_GMEM_HUGETLB = 242

KVM_X86_DEFAULT_VM = 0
KVM_X86_SW_PROTECTED_VM = 1
KVM_X86_TDX_VM = 5

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

#: hugetlb page-size log2 -> the model's page size name (only sizes x86 HugeTLB offers)
HUGETLB_SIZE_LOG: dict[int, str] = {21: "2M", 30: "1G"}
