"""A VMM's ctypes binding of KVM_SET_MEMORY_ATTRIBUTES2, tested against the model unchanged.

The binding below is what a Python VMM would hand to ``fcntl.ioctl(fd, request, buf)``; here
``gmem.ioctl`` stands in for it. A host page is pinned (as an IOMMU mapping or a long-term GUP
pin would), so converting the range to private fails with EAGAIN and the kernel writes the
offset of the pinned page back into the caller's struct.

Run: python docs/examples/vmm_ioctl.py   (CI runs it: tests/model/test_docs_examples.py)
"""

from __future__ import annotations

import ctypes
import errno

from pytest_gmem import Host, uapi


class kvm_memory_attributes2(ctypes.Structure):  # the VMM's own copy of the uAPI struct
    _fields_ = [("offset", ctypes.c_uint64), ("size", ctypes.c_uint64), ("attributes", ctypes.c_uint64),
                ("flags", ctypes.c_uint64), ("error_offset", ctypes.c_uint64), ("reserved", ctypes.c_uint64 * 11)]


KVMIO, IOC_READ_WRITE = 0xAE, 3
SIZE = ctypes.sizeof(kvm_memory_attributes2)
KVM_SET_MEMORY_ATTRIBUTES2 = (IOC_READ_WRITE << 30) | (SIZE << 16) | (KVMIO << 8) | 0xD2  # _IOWR(KVMIO, 0xd2, ...)
assert KVM_SET_MEMORY_ATTRIBUTES2 == uapi.KVM_SET_MEMORY_ATTRIBUTES2


def set_private(fd_ioctl, offset: int, size: int) -> kvm_memory_attributes2:  # type: ignore[no-untyped-def]
    """The VMM's helper: convert ``[offset, offset + size)`` to private; returns the struct."""
    args = kvm_memory_attributes2(offset=offset, size=size, attributes=uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
    fd_ioctl(KVM_SET_MEMORY_ATTRIBUTES2, args)
    return args


def main() -> None:
    host = Host(revision="upstream")
    gmem = host.create_vm(vm_type="sw_protected").create_guest_memfd(
        "64K", uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED)
    mapping = gmem.mmap()
    mapping.write(0x3000, b"DMA buffer")
    pin = mapping.pin(0x3000, 0x1000)  # e.g. an IOMMU mapping of the page

    args = kvm_memory_attributes2(offset=0, size=0x10000, attributes=uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
    try:
        gmem.ioctl(KVM_SET_MEMORY_ATTRIBUTES2, args)
    except OSError as exc:
        print(f"ioctl failed: {errno.errorcode[exc.errno]}, error_offset = {args.error_offset:#x}")
    print(f"after the failure: {gmem.ranges()}")

    pin.unpin()  # userspace drops the long-term reference and retries
    set_private(gmem.ioctl, 0, 0x10000)
    print(f"after the retry:   {gmem.ranges()}")
    print(f"the guest reads:   {gmem.guest_read(0x3000, 10)!r}")
    host.check()


if __name__ == "__main__":
    main()
