"""uAPI constants and structs with the kernel's names, per uAPI.

* :mod:`pytest_gmem.uapi.rfc_v2`: the RFC v2 series (``KVM_GMEM_CONVERT_SHARED/PRIVATE``,
  ``GUEST_MEMFD_FLAG_SUPPORT_SHARED`` / ``INIT_PRIVATE``, shared by default), spoken by the
  ``rfc-v2``, ``fixed`` and ``prealloc`` revisions. Its names are also importable from here, as
  they always were.
* :mod:`pytest_gmem.uapi.upstream`: linux-next's in-place conversion
  (``KVM_SET_MEMORY_ATTRIBUTES2`` on the guest_memfd fd, ``GUEST_MEMFD_FLAG_MMAP`` /
  ``INIT_SHARED``, private by default), spoken by the ``upstream`` revision.
* :mod:`pytest_gmem.uapi.ioc`: ``_IOWR`` and friends, as ``asm-generic/ioctl.h`` builds them.
"""

from __future__ import annotations

from . import ioc, rfc_v2, upstream
from .rfc_v2 import *  # noqa: F403 (the RFC v2 names, where suites import them today)
from .rfc_v2 import (
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    GUEST_MEMFD_FLAG_HUGETLB,
    GUEST_MEMFD_FLAG_INIT_PRIVATE,
    GUEST_MEMFD_FLAG_SUPPORT_SHARED,
    GUESTMEM_HUGETLB_FLAG_MASK,
    GUESTMEM_HUGETLB_FLAG_SHIFT,
    HUGETLB_SIZE_LOG,
    KVM_GMEM_CONVERT_PRIVATE,
    KVM_GMEM_CONVERT_SHARED,
)
from .upstream import (
    GUEST_MEMFD_FLAG_INIT_SHARED,
    GUEST_MEMFD_FLAG_MMAP,
    KVM_CAP_GUEST_MEMFD_FLAGS,
    KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES,
    KVM_MEMORY_ATTRIBUTE_PRIVATE,
    KVM_SET_MEMORY_ATTRIBUTES2,
    kvm_memory_attributes2,
)

__all__ = [
    "FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE", "GUESTMEM_HUGETLB_FLAG_MASK",
    "GUESTMEM_HUGETLB_FLAG_SHIFT", "GUEST_MEMFD_FLAG_HUGETLB", "GUEST_MEMFD_FLAG_INIT_PRIVATE",
    "GUEST_MEMFD_FLAG_INIT_SHARED", "GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_SUPPORT_SHARED",
    "HUGETLB_SIZE_LOG", "KVM_CAP_GUEST_MEMFD_FLAGS", "KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES",
    "KVM_GMEM_CONVERT_PRIVATE", "KVM_GMEM_CONVERT_SHARED", "KVM_MEMORY_ATTRIBUTE_PRIVATE",
    "KVM_SET_MEMORY_ATTRIBUTES2", "ioc", "kvm_memory_attributes2", "rfc_v2", "upstream",
]
