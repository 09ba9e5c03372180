"""The in-place conversion uAPI as linux-next carries it (``include/uapi/linux/kvm.h``,
in-place conversion v8 and later): ``KVM_SET_MEMORY_ATTRIBUTES2`` on the guest_memfd fd and the
``GUEST_MEMFD_FLAG_MMAP`` / ``INIT_SHARED`` creation flags (private by default). The
``upstream`` revision speaks it. Sources: docs/model.md ("The upstream revision")."""

from __future__ import annotations

import ctypes

from .ioc import _IOW, _IOWR, KVMIO

GUEST_MEMFD_FLAG_MMAP = 1 << 0
GUEST_MEMFD_FLAG_INIT_SHARED = 1 << 1

KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3

KVM_CAP_MEMORY_ATTRIBUTES = 233
KVM_CAP_GUEST_MEMFD_FLAGS = 244
KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES = 250


class kvm_memory_attributes(ctypes.Structure):
    """``struct kvm_memory_attributes`` of the VM ioctl ``KVM_SET_MEMORY_ATTRIBUTES`` (32 bytes)."""

    _fields_ = [("address", ctypes.c_uint64), ("size", ctypes.c_uint64),
                ("attributes", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class _offset_or_address(ctypes.Union):
    _fields_ = [("address", ctypes.c_uint64), ("offset", ctypes.c_uint64)]


class kvm_memory_attributes2(ctypes.Structure):
    """``struct kvm_memory_attributes2`` (128 bytes): ``offset`` (a union with ``address``),
    ``size``, ``attributes`` and ``flags`` in; ``error_offset`` out (written on failure only);
    ``reserved[11]`` must be 0. Its first four fields are laid out as ``kvm_memory_attributes``."""

    _anonymous_ = ("_u",)
    _fields_ = [("_u", _offset_or_address), ("size", ctypes.c_uint64), ("attributes", ctypes.c_uint64),
                ("flags", ctypes.c_uint64), ("error_offset", ctypes.c_uint64),
                ("reserved", ctypes.c_uint64 * 11)]


assert ctypes.sizeof(kvm_memory_attributes) == 32
assert ctypes.sizeof(kvm_memory_attributes2) == 128
assert kvm_memory_attributes2.error_offset.offset == 32 and kvm_memory_attributes2.reserved.offset == 40


class kvm_create_guest_memfd(ctypes.Structure):
    """``struct kvm_create_guest_memfd`` (64 bytes), the same in both uAPIs."""

    _fields_ = [("size", ctypes.c_uint64), ("flags", ctypes.c_uint64), ("reserved", ctypes.c_uint64 * 6)]


assert ctypes.sizeof(kvm_create_guest_memfd) == 64

KVM_SET_MEMORY_ATTRIBUTES = _IOW(KVMIO, 0xD2, ctypes.sizeof(kvm_memory_attributes))
KVM_SET_MEMORY_ATTRIBUTES2 = _IOWR(KVMIO, 0xD2, ctypes.sizeof(kvm_memory_attributes2))
KVM_CREATE_GUEST_MEMFD = _IOWR(KVMIO, 0xD4, ctypes.sizeof(kvm_create_guest_memfd))

#: HugeTLB on the authors' work branch (unmerged; ``Host(wip_hugetlb=True)``). The model keeps
#: the RFC v2 encoding (a flag bit and the page size's log2 in bits 58..63): a guess, see
#: docs/model.md.
GUEST_MEMFD_FLAG_HUGETLB_WIP = 1 << 2
