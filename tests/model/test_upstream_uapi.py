"""The ``upstream`` revision's uAPI: ``KVM_SET_MEMORY_ATTRIBUTES2`` on the guest_memfd fd, the
``MMAP`` / ``INIT_SHARED`` creation flags, ``gmem.ioctl`` with raw request numbers and buffers,
and the cases of linux-next's `tools/testing/selftests/kvm/guest_memfd_test.c` that the flags
change (KERNEL-NOTES 6.5), under the selftest's names."""

from __future__ import annotations

import ctypes
import errno

import pytest

from pytest_gmem import ConversionError, GuestMemfd, Host, SigBus, uapi
from pytest_gmem.uapi.ioc import _IOC_DIR, _IOC_NR, _IOC_SIZE, _IOC_TYPE

MB2 = 2 << 20
PRIVATE = uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE


def new_file(flags: int = uapi.GUEST_MEMFD_FLAG_MMAP, size: int = 4 * 4096, **host: object) -> GuestMemfd:
    return Host(revision="upstream", **host).create_vm(vm_type="sw_protected").create_guest_memfd(size, flags)  # type: ignore[arg-type]


def attrs(offset: int = 0, size: int = 4096, attributes: int = PRIVATE, **fields: int) -> uapi.kvm_memory_attributes2:
    a = uapi.kvm_memory_attributes2(offset=offset, size=size, attributes=attributes)
    for name, value in fields.items():
        if name.startswith("reserved"):
            a.reserved[int(name[len("reserved"):])] = value
        else:
            setattr(a, name, value)
    return a


# --- numbers and layouts, as include/uapi/linux/kvm.h builds them ----------------------------------
def test_ioctl_number_is_iowr_kvmio_0xd2_of_the_struct() -> None:
    req = uapi.KVM_SET_MEMORY_ATTRIBUTES2
    assert (_IOC_DIR(req), _IOC_TYPE(req), _IOC_NR(req), _IOC_SIZE(req)) == (3, 0xAE, 0xD2, 128)
    assert req == 0xC080AED2
    # same minor number as the VM ioctl, distinct request: direction and size differ
    assert uapi.upstream.KVM_SET_MEMORY_ATTRIBUTES == 0x4020AED2 != req
    assert uapi.upstream.KVM_CREATE_GUEST_MEMFD == 0xC040AED4


def test_struct_kvm_memory_attributes2_layout() -> None:
    s = uapi.kvm_memory_attributes2
    assert ctypes.sizeof(s) == 128
    offsets = {name: getattr(s, name).offset for name in ("size", "attributes", "flags", "error_offset", "reserved")}
    assert offsets == {"size": 8, "attributes": 16, "flags": 24, "error_offset": 32, "reserved": 40}
    a = s(offset=0x1000)
    assert a.address == 0x1000  # the union: offset on the guest_memfd fd, address on the VM
    # its first four fields are laid out as struct kvm_memory_attributes
    old = uapi.upstream.kvm_memory_attributes.from_buffer_copy(bytes(attrs(0x2000, 0x3000))[:32])
    assert (old.address, old.size, old.attributes, old.flags) == (0x2000, 0x3000, PRIVATE, 0)


def test_flag_and_cap_values() -> None:
    assert (uapi.GUEST_MEMFD_FLAG_MMAP, uapi.GUEST_MEMFD_FLAG_INIT_SHARED) == (1, 2)
    assert uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE == 8
    assert (uapi.KVM_CAP_GUEST_MEMFD_FLAGS, uapi.KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) == (244, 250)
    # the RFC v2 names stay where suites import them, in their own namespace too
    assert uapi.GUEST_MEMFD_FLAG_SUPPORT_SHARED == uapi.rfc_v2.GUEST_MEMFD_FLAG_SUPPORT_SHARED == 1
    assert uapi.KVM_GMEM_CONVERT_SHARED == uapi.rfc_v2.KVM_GMEM_CONVERT_SHARED == 0xC040AF41


# --- creation flags, decoded per revision -------------------------------------------------------------
def test_private_by_default_and_init_shared_opts_in() -> None:
    assert new_file(uapi.GUEST_MEMFD_FLAG_MMAP).ranges() == [(0, 4 * 4096, "private")]
    shared = new_file(uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED)
    assert shared.ranges() == [(0, 4 * 4096, "shared")]
    # the same bit 1 under the RFC v2 uAPI is INIT_PRIVATE: the opposite sense
    v2 = Host(revision="fixed").create_vm().create_guest_memfd(4 * 4096, 0b11)
    assert v2.ranges() == [(0, 4 * 4096, "private")]


def test_keywords_keep_their_meaning_under_every_revision() -> None:
    for revision in ("fixed", "upstream"):
        vm = Host(revision=revision).create_vm()
        assert vm.create_guest_memfd("8K", mmap=True, init_private=False).ranges()[0][2] == "shared"
        assert vm.create_guest_memfd("8K", mmap=True, init_private=True).ranges()[0][2] == "private"


def test_guest_memfd_flags() -> None:
    """guest_memfd_test.c test_guest_memfd_flags: each single-bit flag is accepted when
    KVM_CAP_GUEST_MEMFD_FLAGS has it (MMAP, INIT_SHARED), else EINVAL."""
    supported = uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED
    vm = Host(revision="upstream").create_vm()
    for bit in range(64):
        flag = 1 << bit
        if flag & supported:
            vm.create_guest_memfd("8K", flag | uapi.GUEST_MEMFD_FLAG_MMAP)
        else:
            with pytest.raises(OSError) as e:
                vm.create_guest_memfd("8K", flag)
            assert e.value.errno == errno.EINVAL and f"{flag:#x}" in str(e.value)


def test_init_shared_needs_in_place_conversion_on_a_private_memory_vm() -> None:
    host = Host(revision="upstream", gmem_in_place_conversion=False)
    with pytest.raises(OSError, match="INIT_SHARED needs in-place conversion"):
        host.create_vm().create_guest_memfd("8K", uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED)


def test_hugetlb_is_only_the_work_branch() -> None:
    with pytest.raises(OSError, match="only on the authors' work branch"):
        Host(revision="upstream", hugetlb={"2M": 1}).create_vm().create_guest_memfd("2M", mmap=True, page_size="2M")
    wip = Host(revision="upstream", wip_hugetlb=True, hugetlb={"2M": 1})
    g = wip.create_vm().create_guest_memfd("2M", mmap=True, page_size="2M")
    assert g.page_size == "2M"


def test_mmap_not_supported() -> None:
    """guest_memfd_test.c: without MMAP, mmap() fails (ENODEV)."""
    with pytest.raises(OSError) as e:
        new_file(0).mmap()
    assert e.value.errno == errno.ENODEV and "GUEST_MEMFD_FLAG_MMAP" in str(e.value)


def test_fault_private() -> None:
    """guest_memfd_test.c: MMAP without INIT_SHARED: every host access SIGBUSes."""
    m = new_file(uapi.GUEST_MEMFD_FLAG_MMAP).mmap()
    for off in (0, 4096, 3 * 4096):
        with pytest.raises(SigBus):
            m.read(off, 8)
        with pytest.raises(SigBus):
            m.write(off, b"x")


def test_mmap_supported() -> None:
    """guest_memfd_test.c: MMAP|INIT_SHARED: memset, punch the first page (zeros), rest intact."""
    g = new_file(uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED)
    m = g.mmap()
    m.write(0, b"\xaa" * 4 * 4096)
    g.punch_hole(0, 4096)
    assert m.read(0, 4096) == bytes(4096)
    assert m.read(4096, 3 * 4096) == b"\xaa" * 3 * 4096


# --- KVM_SET_MEMORY_ATTRIBUTES2: the checks, in the kernel's order --------------------------------------
@pytest.mark.parametrize(("fields", "named"), [
    ({"flags": 1}, "flags 0x1 must be 0"),
    ({"reserved0": 1}, "reserved[0] = 0x1 must be 0"),
    ({"reserved10": 7}, "reserved[10] = 0x7 must be 0"),
    ({"attributes": 1 << 4}, "attributes 0x10"),
    ({"size": 0}, "size 0x0"),
    ({"offset": 0xFFFF_FFFF_FFFF_F000, "size": 0x2000}, "overflows"),
    ({"offset": 0x800}, "not 4K aligned"),
    ({"size": 0x1800}, "not 4K aligned"),
    ({"offset": 4 * 4096}, "past the file's size"),
    ({"size": 5 * 4096}, "past the file's size"),
])
def test_bad_arguments_are_einval_naming_the_field_and_change_nothing(fields: dict[str, int], named: str) -> None:
    g = new_file(uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED)
    g.guest_write(0, b"data")
    before = g.snapshot()
    a = attrs(**fields)
    with pytest.raises(ConversionError) as e:
        g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, a)
    assert e.value.errno == errno.EINVAL and named in str(e.value)
    assert a.error_offset == 0, "error_offset is written only for a failed conversion"
    assert g.snapshot() == before


def test_checks_come_in_the_kernels_order() -> None:
    """flags before reserved before attributes before size before alignment before i_size."""
    g = new_file()
    a = attrs(offset=0x800, size=0, attributes=1 << 5, flags=2, reserved3=1)
    order = ["flags", "reserved[3]", "attributes", "size", "not 4K aligned"]
    for expected in order:
        with pytest.raises(ConversionError) as e:
            g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, a)
        assert expected in str(e.value), (expected, str(e.value))
        if expected == "flags":
            a.flags = 0
        elif expected.startswith("reserved"):
            a.reserved[3] = 0
        elif expected == "attributes":
            a.attributes = PRIVATE
        elif expected == "size":
            a.size = 4096


def test_input_error_offset_is_not_read() -> None:
    g = new_file(uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED)
    a = attrs(error_offset=0xDEAD000)
    g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, a)
    assert g.shareability(0) == "private"
    assert a.error_offset == 0xDEAD000, "success writes nothing back"


def test_eagain_writes_the_pinned_folio_into_error_offset() -> None:
    g = new_file(uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED)
    m = g.mmap()
    m.write(2 * 4096, b"pinned")
    pin = m.pin(2 * 4096, 4096)
    buf = bytearray(attrs(0, 4 * 4096))
    with pytest.raises(ConversionError) as e:
        g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, buf)
    assert e.value.errno == errno.EAGAIN
    assert uapi.kvm_memory_attributes2.from_buffer(buf).error_offset == 2 * 4096 == e.value.error_offset
    assert g.ranges() == [(0, 4 * 4096, "shared")]
    pin.unpin()
    g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, buf)
    assert g.ranges() == [(0, 4 * 4096, "private")]


def test_range_that_already_has_the_attributes_returns_early() -> None:
    g = new_file()  # private
    m_refs = g.mmap()
    g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, attrs(0, 4 * 4096, PRIVATE))
    assert g.host.user_errors == [] and m_refs is not None


def test_set_attributes_named_form() -> None:
    g = new_file()
    g.set_attributes(4096, "8K", 0)
    assert g.ranges() == [(0, 4096, "private"), (4096, 3 * 4096, "shared"), (3 * 4096, 4 * 4096, "private")]
    with pytest.raises(ConversionError, match="flags 0x4 must be 0"):
        g.set_attributes(0, "4K", PRIVATE, flags=4)


# --- the raw ioctl entry: what a ctypes VMM binding sends ------------------------------------------------
def test_short_buffer_is_efault_and_unknown_request_is_enotty() -> None:
    g = new_file()
    with pytest.raises(OSError) as e:
        g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, bytes(64))
    assert e.value.errno == errno.EFAULT and "only 64 bytes" in str(e.value)
    with pytest.raises(OSError) as e:
        g.ioctl(uapi.KVM_GMEM_CONVERT_PRIVATE, bytearray(64))
    assert e.value.errno == errno.ENOTTY and "rfc-v2 uAPI" in str(e.value)
    with pytest.raises(OSError) as e:
        g.ioctl(0xC080AE99, bytearray(128))
    assert e.value.errno == errno.ENOTTY
    with pytest.raises(OSError) as e:
        g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, "not a buffer")
    assert e.value.errno == errno.EFAULT and "not a buffer" in str(e.value)


def test_in_place_conversion_off_is_enotty() -> None:
    g = new_file(gmem_in_place_conversion=False)
    with pytest.raises(OSError) as e:
        g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, attrs())
    assert e.value.errno == errno.ENOTTY and "gmem_in_place_conversion" in str(e.value)
    with pytest.raises(OSError) as e:
        g.convert_shared(0, 4096)
    assert e.value.errno == errno.ENOTTY


def test_rfc_v2_revisions_take_their_own_ioctls_through_the_same_entry() -> None:
    g = Host(revision="fixed").create_vm().create_guest_memfd(4 * 4096, mmap=True)
    conv = uapi.rfc_v2.kvm_gmem_convert(offset=0, size=4096)
    g.ioctl(uapi.KVM_GMEM_CONVERT_PRIVATE, conv)
    assert g.shareability(0) == "private"
    with pytest.raises(OSError) as e:
        g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, attrs())
    assert e.value.errno == errno.ENOTTY
    with pytest.raises(OSError) as e:
        g.set_attributes(0, 4096, 0)
    assert e.value.errno == errno.ENOTTY


def test_closed_fd_is_ebadf() -> None:
    g = new_file()
    g.close()
    with pytest.raises(OSError) as e:
        g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, attrs())
    assert e.value.errno == errno.EBADF


def test_wip_hugetlb_conversion_splits_and_merges() -> None:
    """The work branch: a 4K shared page in a 2M file splits the huge page; converting it back
    merges it, contents kept (sw_protected)."""
    host = Host(revision="upstream", wip_hugetlb=True, hugetlb={"2M": 2})
    g = host.create_vm().create_guest_memfd(2 * MB2, mmap=True, init_private=True, page_size="2M")
    g.guest_write(0, b"private data")
    g.convert_shared(4096, "4K")
    assert [f[1] for f in g.folios()][:2] == [1, 1]
    g.convert_private(4096, "4K")
    assert next(iter(g.folios()))[1] == 512
    assert g.guest_read(0, 12) == b"private data"
    host.check()


@pytest.mark.parametrize("revision", ["fixed", "upstream"])
def test_same_huge_page_allocation_race_and_its_fix(revision: str) -> None:
    """Two faults allocating in the same huge page: without hugetlb_fault_mutex_lock the loser
    finds the subpool at its maximum (ENOMEM); the work branch serialises them, so under
    upstream the point is never reached and the fault-in succeeds."""
    import faults

    host = Host(revision=revision, wip_hugetlb=revision == "upstream", hugetlb={"2M": 1})
    g = host.create_vm().create_guest_memfd(MB2, mmap=True, init_private=True, page_size="2M")
    with faults.scope(record=True) as sc, faults.inject("hugepage_subpool_get_pages", "ENOMEM", nth=1):
        if revision == "upstream":
            g.guest_write(0, b"x")
        else:
            with pytest.raises(OSError) as e:
                g.guest_write(0, b"x")
            assert e.value.errno == errno.ENOMEM
    hits = sum(1 for ev in sc.trace if ev.point == "hugepage_subpool_get_pages")
    assert hits == (0 if revision == "upstream" else 1)
    host.check()
