"""TDX VMs in the model: S-EPT removal and demote, BUSY retries, fatal policies, accept state,
cleared contents. Written against the public API plus ``pytest_gmem.model.tdx``."""

from __future__ import annotations

import errno

import pytest

import faults
from pytest_gmem import ConversionError, GuestFault, Host
from pytest_gmem.model.tdx import SEAMCALL_NAMES, TDX_BUSY_RETRIES, UnacceptedAccess

MB = 1 << 20
REVISIONS = ("rfc-v2", "fixed", "prealloc")
#: tdx_sept_remove_private_spte's SEAMCALLs for one S-EPT entry, in order
REMOVAL = ["tdh_mem_range_block", "tdh_mem_track", "tdh_mem_page_remove", "tdh_phymem_page_wbinvd_hkid"]


def make(policy: str = "bug-vm", revision: str = "fixed", size: str = "4M", page_size: str = "2M",
         init_private: bool = True):  # type: ignore[no-untyped-def]
    host = Host(hugetlb={"2M": 8}, revision=revision)
    vm = host.create_vm(vm_type="tdx", tdx_fatal_policy=policy)
    g = vm.create_guest_memfd(size=size, mmap=True, init_private=init_private, page_size=page_size)
    return host, vm, g


def remove_error(code: str, **kw):  # type: ignore[no-untyped-def]
    return faults.inject("tdh_mem_page_remove", faults.tdx_error(code), **kw)


# --- creation -------------------------------------------------------------------------------
def test_catalog_lists_the_tdx_points() -> None:
    cat = {p.name: p for p in faults.catalog()}
    assert cat["tdh_mem_page_remove"].kinds == {"tdx_error"}
    assert cat["tdh_mem_page_demote"].kinds == {"tdx_error"}
    assert cat["tdp_mmu_alloc_sp_for_split"].kinds == {"ENOMEM"}


def test_default_policy_and_bad_values() -> None:
    host = Host()
    vm = host.create_vm(vm_type="tdx")
    assert vm.fatal_policy == "bug-vm" and vm.preserves_contents is False
    with pytest.raises(ValueError, match="'kill'"):
        host.create_vm(vm_type="tdx", tdx_fatal_policy="kill")
    with pytest.raises(TypeError):
        host.create_vm(vm_type="tdx", colour="blue")


# --- contents and acceptance ------------------------------------------------------------------
@pytest.mark.parametrize("revision", REVISIONS)
def test_contents_cleared_after_to_shared(revision: str) -> None:
    host, _vm, g = make(revision=revision)
    g.guest_write(0, b"secret")
    g.guest_write(8192, b"kept")
    g.convert_shared(0, "4K")
    assert g.mmap().read(0, 6) == bytes(6)  # TDH.MEM.PAGE.REMOVE cleared the page
    assert g.guest_read(8192, 4) == b"kept"  # the demoted rest of the 2M page is untouched
    assert g.guest_mapping_level(8192) == "4K"
    host.check()


@pytest.mark.parametrize("revision", REVISIONS)
def test_re_accept_needed_after_to_private(revision: str) -> None:
    host, _vm, g = make(revision=revision, init_private=False)
    m = g.mmap()
    m.write(0, b"host data")
    g.convert_private(0, "4K")
    with pytest.raises(UnacceptedAccess) as info:
        g.guest_read(0, 4)
    assert info.value.offset == 0 and "ACCEPT" in str(info.value)
    g.guest_accept(0, 4096)
    assert g.guest_read(0, 9) == bytes(9)  # accept zeroes the page
    g.guest_write(0, b"guest")
    assert g.guest_read(0, 5) == b"guest"
    # a page private since creation counts as accepted; accepting twice is harmless
    g.guest_accept(0, 4096)
    with pytest.raises(GuestFault) as shared:
        g.guest_accept(4096, 4096)
    assert shared.value.errno == errno.EINVAL
    host.check()


def test_round_trip_needs_accept_again() -> None:
    host, _vm, g = make()
    g.guest_write(0, b"a")
    g.convert_shared(0, "2M")
    g.convert_private(0, "2M")
    with pytest.raises(UnacceptedAccess):
        g.guest_write(4096, b"b")
    g.guest_accept(0, 2 * MB)
    g.guest_write(4096, b"b")
    assert g.guest_mapping_level(0) == "2M"  # merged again, mapped huge once accepted
    host.check()


def test_punch_hole_of_private_page_needs_accept() -> None:
    host, _vm, g = make(page_size="4K")
    g.guest_write(0, b"a")
    g.punch_hole(0, 4096)
    with pytest.raises(UnacceptedAccess):
        g.guest_read(0, 1)
    g.guest_accept(0, 4096)
    assert g.guest_read(0, 1) == b"\0"
    host.check()


# --- TDX_OPERAND_BUSY -----------------------------------------------------------------------
@pytest.mark.parametrize("revision", REVISIONS)
def test_busy_is_retried_and_succeeds(revision: str) -> None:
    host, vm, g = make(revision=revision)
    g.guest_write(0, b"x" * 8192)
    with faults.scope(record=True) as sc, remove_error("TDX_OPERAND_BUSY", nth=2, times=TDX_BUSY_RETRIES):
        g.convert_shared(0, "8K")
    assert [f.kind.label() for f in sc.fired] == ["tdx_error(TDX_OPERAND_BUSY)"]
    # armed: page by page, the second got BUSY, then the retry of that page
    assert [e.context["attempt"] for e in sc.trace if e.point == "tdh_mem_page_remove"] == [0, 0, 1]
    assert sc.census["tdh_mem_page_remove"] == 3
    assert not vm.dead and not host.warnings
    assert g.ranges()[0] == (0, 8192, "shared")
    host.check()


@pytest.mark.parametrize("policy, code", [("bug-vm", errno.EIO), ("leak", errno.EFAULT)])
def test_busy_beyond_the_retry_bound_is_fatal(policy: str, code: int) -> None:
    host, vm, g = make(policy=policy)
    g.guest_write(0, b"x")
    with remove_error("TDX_OPERAND_BUSY", times=None), pytest.raises(ConversionError) as info:
        g.convert_shared(0, "4K")
    assert info.value.errno == code
    assert vm.dead and "TDX_OPERAND_BUSY" in (vm.death or "")
    assert [w.where for w in host.warnings] == ["tdx_sept_remove_private_spte"]
    assert g.ranges() == [(0, 4 * MB, "private")]
    host.check()


def test_more_busy_retries_can_be_configured() -> None:
    host = Host(hugetlb={"2M": 8})
    vm = host.create_vm(vm_type="tdx", tdx_busy_retries=3)
    g = vm.create_guest_memfd(size="2M", mmap=True, init_private=True, page_size="2M")
    g.guest_write(0, b"x")
    with remove_error("TDX_OPERAND_BUSY", times=3):
        g.convert_shared(0, "2M")
    assert not vm.dead
    host.check()


# --- fatal errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("revision", REVISIONS)
def test_fatal_bug_vm(revision: str) -> None:
    host, vm, g = make(revision=revision)
    g.guest_write(0, b"x" * 3 * 4096)
    with remove_error("fatal", nth=2), pytest.raises(ConversionError) as info:
        g.convert_shared(0, "12K")
    assert info.value.errno == errno.EIO
    assert info.value.error_offset == 4096  # the page whose removal failed
    assert vm.dead
    assert g.ranges() == [(0, 4 * MB, "private")]
    host.check()
    # a dead VM touches nothing
    with pytest.raises(GuestFault) as dead:
        g.guest_read(8192, 1)
    assert dead.value.errno == errno.EIO
    with pytest.raises(GuestFault):
        g.guest_accept(0, 4096)
    with faults.scope(record=True) as sc:
        with pytest.raises(ConversionError) as again:
            g.convert_shared(2 * MB, "4K")
        assert again.value.errno == errno.EIO
        g.convert_private(2 * MB, "4K")  # already private: an empty work list is a no-op
    assert not any(e.point.startswith("tdh_") for e in sc.trace)
    host.check()
    # the page was not held: closing the file returns every huge page to the pool
    g.close()
    host.flush_work()
    host.check()
    assert host.hugetlb_stats("2M")["free"] == 8


@pytest.mark.parametrize("revision", REVISIONS)
def test_fatal_leak(revision: str) -> None:
    host, vm, g = make(policy="leak", revision=revision)
    g.guest_write(0, b"x" * 4096)
    g.guest_write(2 * MB, b"y")
    with remove_error("fatal"), pytest.raises(ConversionError) as info:
        g.convert_shared(0, "4K")
    assert info.value.errno == errno.EFAULT  # kvm_gmem_private_has_safe_refcount
    assert vm.dead
    # tdx_hold_page_on_error holds the whole (still unsplit) 2M folio
    assert vm.leaked_pages() == 512
    assert next(iter(g.folios())) == (0, 512, 513)
    host.check()
    g.close()
    host.flush_work()
    host.check()
    stats = host.hugetlb_stats("2M")
    assert stats["free"] == 7  # never returned, never reused
    assert vm.leaks[0].left_filemap
    # a new file cannot get the held page
    g2 = host.create_vm().create_guest_memfd(size="2M", page_size="2M")
    g2.guest_write(0, b"z")
    assert vm.leaks[0].block.pins and host.hugetlb_stats("2M")["free"] == 6
    host.check()


def test_fatal_leak_of_a_4k_folio_holds_only_that_page() -> None:
    host, vm, g = make(policy="leak", page_size="4K", size="64K")
    g.guest_write(0, b"x" * 4 * 4096)
    with remove_error("fatal", nth=3), pytest.raises(ConversionError):
        g.convert_shared(0, "16K")
    assert vm.leaked_pages() == 1 and vm.leaks[0].start == 2
    assert [r for r in g.folios() if r[2] > r[1]] == [(2 * 4096, 1, 2)]
    g.punch_hole(0, 64 * 1024)  # the file drops the folio; TDX keeps it
    host.check()
    assert vm.leaks[0].left_filemap


@pytest.mark.parametrize("policy", ["bug-vm", "leak"])
def test_fatal_during_punch_hole_never_fails_the_punch(policy: str) -> None:
    host, vm, g = make(policy=policy)
    g.guest_write(0, b"x")
    with remove_error("fatal"):
        g.punch_hole(0, 2 * MB)
    assert vm.dead
    assert [w.where for w in host.warnings] == ["tdx_sept_remove_private_spte"]
    host.check()
    g.close()
    host.flush_work()
    host.check()
    assert host.hugetlb_stats("2M")["free"] == (8 if policy == "bug-vm" else 7)


# --- demote -----------------------------------------------------------------------------------
@pytest.mark.parametrize("revision", REVISIONS)
def test_partial_conversion_demotes_the_huge_entry(revision: str) -> None:
    host, _vm, g = make(revision=revision)
    g.guest_write(0, b"a")
    g.guest_write(MB, b"b")
    assert g.guest_mapping_level(0) == "2M"
    with faults.scope(record=True) as sc:
        g.convert_shared(0, "4K")
    points = [e.point for e in sc.trace if e.point.startswith("tdh_")]
    assert points == ["tdh_mem_page_demote", *REMOVAL]
    assert g.guest_read(MB, 1) == b"b"  # still accepted: no re-accept outside the range
    host.check()


def test_whole_huge_range_is_removed_without_demote() -> None:
    host, _vm, g = make()
    g.guest_write(0, b"a")
    with faults.scope(record=True) as sc:
        g.convert_shared(0, "2M")
    trace = [(e.point, e.context["level"]) for e in sc.trace if e.point.startswith("tdh_")]
    assert trace == [(p, "2M") for p in REMOVAL]
    host.check()


def test_demote_busy_is_retried() -> None:
    host, vm, g = make()
    g.guest_write(0, b"a")
    with faults.inject("tdh_mem_page_demote", faults.tdx_error("TDX_OPERAND_BUSY")):
        g.convert_shared(0, "4K")
    assert not vm.dead
    host.check()


@pytest.mark.parametrize("policy", ["bug-vm", "leak"])
@pytest.mark.parametrize("revision", REVISIONS)
def test_demote_failure(policy: str, revision: str) -> None:
    host, vm, g = make(policy=policy, revision=revision)
    g.guest_write(MB, b"b")
    with faults.inject("tdh_mem_page_demote", faults.tdx_error("fatal")), \
            pytest.raises(ConversionError) as info:
        g.convert_shared(0, "4K")
    assert info.value.errno == errno.EIO
    assert info.value.error_offset == 0
    assert vm.dead and vm.leaked_pages() == 0  # nothing was removed, nothing to hold
    assert g.ranges() == [(0, 4 * MB, "private")]
    assert host.warnings[0].where == "tdx_sept_split_private_spt"
    host.check()


# --- invariants catch what they should ---------------------------------------------------------
def test_invariant_sees_a_page_in_the_sept_and_a_host_mapping() -> None:
    host, _vm, g = make(init_private=False, page_size="4K", size="64K")
    m = g.mmap()
    m.write(0, b"x")
    g.guest.install(0, 1, "4K", True)  # corrupt: an S-EPT entry on a host-mapped shared page
    with pytest.raises(AssertionError, match=r"tdx sept"):
        host.check()


def test_invariant_sees_a_held_page_freed() -> None:
    host, vm, g = make(policy="leak")
    g.guest_write(0, b"x")
    with remove_error("fatal"), pytest.raises(ConversionError):
        g.convert_shared(0, "4K")
    lk = vm.leaks[0]
    lk.block.pins.clear()  # corrupt: the references TDX holds are dropped
    with pytest.raises(AssertionError, match=r"tdx leak"):
        host.check()


def test_invariant_sees_a_dead_vm_mapping_something() -> None:
    host, _vm, g = make()
    g.guest_write(0, b"x")
    with remove_error("fatal"), pytest.raises(ConversionError):
        g.convert_shared(0, "2M")
    g.guest.install(2 * MB // 4096, 2 * MB // 4096 + 1, "4K", True)
    with pytest.raises(AssertionError, match=r"tdx dead"):
        host.check()


# --- what a failed conversion leaves (review fixes) -------------------------------------------
PREALLOC_ENOMEM_POINTS = ("kvm_gmem_shareability_store", "guestmem_hugetlb_stash_metadata",
                          "hugetlb_vmemmap_restore_folio", "__kvm_gmem_filemap_add_folio",
                          "tdp_mmu_alloc_sp_for_split")


@pytest.mark.parametrize("point", PREALLOC_ENOMEM_POINTS)
def test_prealloc_failed_to_shared_leaves_the_private_page_accepted_and_intact(point: str) -> None:
    """prealloc removes nothing from the S-EPT before its last failure point: an ENOMEM leaves
    the guest's page mapped, accepted and with its contents (Yan Zhao: the guest may go on
    using it without accepting it again)."""
    host = Host(hugetlb={"2M": 8}, revision="prealloc", check_rollback=True)
    vm = host.create_vm(vm_type="tdx")
    g = vm.create_guest_memfd(size="4M", mmap=True, init_private=True, page_size="2M")
    g.guest_write(0, b"secret")
    with faults.scope(record=True) as sc, faults.inject(point, "ENOMEM"), \
            pytest.raises(ConversionError) as info:
        g.convert_shared(0, "4K")
    assert info.value.errno == errno.ENOMEM
    assert not any(e.point == "tdh_mem_page_remove" for e in sc.trace)
    assert vm.pending_ranges(g) == [] and not vm.dead
    assert g.guest_read(0, 6) == b"secret"  # no UnacceptedAccess, nothing cleared
    assert host.rollback_failures == []
    host.check()


@pytest.mark.parametrize("revision", REVISIONS)
def test_demote_allocation_failure_is_a_clean_enomem(revision: str) -> None:
    """Splitting a huge S-EPT leaf needs a page table page (tdp_mmu_alloc_sp_for_split): its
    ENOMEM fails the conversion and a punch hole before anything is removed; the VM lives."""
    host, vm, g = make(revision=revision)
    host.check_rollback = True
    g.guest_write(0, b"x" * 8192)
    with faults.inject("tdp_mmu_alloc_sp_for_split", "ENOMEM"), pytest.raises(ConversionError) as info:
        g.convert_shared(4096, "4K")
    assert info.value.errno == errno.ENOMEM and not vm.dead
    assert g.guest_mapping_level(0) == "2M" and vm.pending_ranges(g) == []
    assert g.guest_read(0, 8192) == b"x" * 8192
    with faults.inject("tdp_mmu_alloc_sp_for_split", "ENOMEM"), pytest.raises(OSError) as punch:
        g.punch_hole(4096, 4096)
    assert punch.value.errno == errno.ENOMEM and g.guest_read(4096, 4) == b"xxxx"
    assert host.rollback_failures == []
    host.check()
    g.convert_shared(4096, "4K")  # without the fault both work
    assert g.guest_mapping_level(0) == "4K" and g.guest_read(0, 4) == b"xxxx"
    host.check()


@pytest.mark.parametrize("revision", REVISIONS)
def test_partial_accept_maps_only_what_was_accepted(revision: str) -> None:
    """TDX maps private memory at the guest's accept level: accepting one 4K page of a PENDING
    2M range maps that page at 4K, never the pending rest."""
    host, vm, g = make(revision=revision, size="2M", init_private=False)
    g.convert_private(0, "2M")
    assert vm.pending_ranges(g) == [(0, 2 * MB)]
    g.guest_accept(0, 4096)
    assert g.guest_mapping_level(0) == "4K" and g.guest_mapping_level(4096) is None
    assert vm.pending_ranges(g) == [(4096, 2 * MB)]
    host.check()
    g.guest_accept(0, 2 * MB)  # the rest accepted: its 4K entries stay 4K (no PROMOTE)
    assert g.guest_mapping_level(0) == "4K" and g.guest_mapping_level(2 * MB - 4096) == "4K"
    host.check()
    fresh_host, _vm, fresh = make(revision=revision, size="2M", init_private=False)
    fresh.convert_private(0, "2M")
    fresh.guest_accept(0, 2 * MB)  # accepted whole: one huge entry
    assert fresh.guest_mapping_level(0) == "2M"
    fresh_host.check()


def test_accepting_one_page_never_promotes_its_neighbours() -> None:
    host, vm, g = make(revision="prealloc", size="2M")
    g.guest_write(0, b"x")
    seamcalls = vm.seamcalls
    g.convert_shared(5 * 4096, "4K")
    g.convert_private(5 * 4096, "4K")
    g.guest_accept(5 * 4096, 4096)
    assert g.guest_mapping_level(0) == "4K" and g.guest_mapping_level(5 * 4096) == "4K"
    assert vm.seamcalls > seamcalls
    host.check()


@pytest.mark.parametrize("revision", REVISIONS)
def test_dead_vm_conversion_fails_with_eio_before_any_allocation(revision: str) -> None:
    """A conversion of a dead TD's file fails with EIO before compute_work or the maple tree
    preallocation can fail (a VMM would otherwise retry an ENOMEM against a dead VM)."""
    _host, vm, g = make(revision=revision)
    g.guest_write(0, b"x")
    with remove_error("fatal"), pytest.raises(ConversionError):
        g.convert_shared(0, "4K")
    assert vm.dead
    with faults.scope(record=True) as sc, \
            faults.inject("kvm_gmem_convert_compute_work", "ENOMEM", times=None), \
            faults.inject("kvm_gmem_shareability_store", "ENOMEM", times=None), \
            pytest.raises(ConversionError) as info:
        g.convert_shared(2 * MB, "4K")
    assert info.value.errno == errno.EIO
    assert not sc.trace  # no fault point was reached


# --- the stages of a removal (tdx_sept_remove_private_spte) ----------------------------------
@pytest.mark.parametrize("policy", ["bug-vm", "leak"])
@pytest.mark.parametrize("stage", ["tdh_mem_range_block", "tdh_mem_track", "tdh_mem_page_remove"])
def test_a_fatal_error_before_the_removal_leaves_the_entry_mapped(stage: str, policy: str) -> None:
    """BLOCK, TRACK or REMOVE failing on the third 4K entry: the two before it are removed
    (and cleared), the third stays in the S-EPT with its contents, nothing after it is touched."""
    host, vm, g = make(policy=policy, page_size="4K", size="64K")
    g.guest_write(0, b"x" * 4 * 4096)
    with faults.scope(record=True) as sc, faults.inject(stage, faults.tdx_error("fatal"), nth=3), \
            pytest.raises(ConversionError) as info:
        g.convert_shared(0, "16K")
    assert info.value.errno == (errno.EIO if policy == "bug-vm" else errno.EFAULT)
    assert vm.dead and SEAMCALL_NAMES[stage] in (vm.death or "")
    assert [e.point for e in sc.trace if e.point == "tdh_mem_page_remove" and e.fired] == \
        (["tdh_mem_page_remove"] if stage == "tdh_mem_page_remove" else [])
    sept = [(s, e) for s, e, m in g.guest.ranges() if m.private]
    assert sept == [(2, 4)]  # the failed entry and the untouched one after it
    assert g.contents.read(2 * 4096, 1) == b"x" and g.contents.read(0, 1) == b"\0"
    assert vm.leaked_pages() == (1 if policy == "leak" else 0)
    host.check()


@pytest.mark.parametrize("policy", ["bug-vm", "leak"])
def test_a_failed_wbinvd_removes_the_entry_but_never_resets_the_page(policy: str) -> None:
    """TDH.PHYMEM.PAGE.WBINVD failing: the entry is out of the S-EPT, but tdx_quirk_reset_page
    never ran, so the page keeps its old contents; the VM is bugged."""
    host, vm, g = make(policy=policy, page_size="4K", size="64K")
    g.guest_write(0, b"x" * 4 * 4096)
    with faults.inject("tdh_phymem_page_wbinvd_hkid", faults.tdx_error("fatal"), nth=2), \
            pytest.raises(ConversionError) as info:
        g.convert_shared(0, "16K")
    assert info.value.errno == (errno.EIO if policy == "bug-vm" else errno.EFAULT)
    assert info.value.error_offset == 4096 or policy == "leak"
    assert vm.dead and "TDH.PHYMEM.PAGE.WBINVD" in (vm.death or "")
    sept = [(s, e) for s, e, m in g.guest.ranges() if m.private]
    assert sept == [(2, 4)]  # entry 1 left the S-EPT; 2 and 3 were never reached
    assert g.contents.read(4096, 1) == b"x"  # not reset
    assert g.contents.read(0, 1) == b"\0"  # entry 0 went all the way: reset
    host.check()


def test_busy_block_and_track_are_retried_like_the_removal() -> None:
    host, vm, g = make()
    g.guest_write(0, b"a")
    before = vm.seamcalls
    with faults.inject("tdh_mem_range_block", faults.tdx_error("TDX_OPERAND_BUSY")), \
            faults.inject("tdh_mem_track", faults.tdx_error("TDX_OPERAND_BUSY")):
        g.convert_shared(0, "2M")
    assert not vm.dead and g.shareability(0) == "shared"
    assert vm.seamcalls - before == 4 + 2  # the four SEAMCALLs, BLOCK and TRACK once more
    host.check()


def test_wbinvd_busy_is_not_retried() -> None:
    host, vm, g = make()
    g.guest_write(0, b"a")
    with faults.inject("tdh_phymem_page_wbinvd_hkid", faults.tdx_error("TDX_OPERAND_BUSY")), \
            pytest.raises(ConversionError):
        g.convert_shared(0, "2M")
    assert vm.dead
    host.check()


def test_removal_faults_fire_in_the_kernels_order() -> None:
    """Entry by entry, BLOCK, TRACK, REMOVE, WBINVD: with two armings on different stages, the
    one the kernel reaches first fires first, and nothing fires past a fatal error."""
    host, vm, g = make(page_size="4K", size="64K")
    g.guest_write(0, b"x" * 4 * 4096)
    busy = faults.tdx_error("TDX_OPERAND_BUSY")
    with faults.scope() as sc:
        faults.inject("tdh_mem_range_block", busy, nth=3)  # entry 2
        faults.inject("tdh_mem_page_remove", busy, nth=1)  # entry 0
        g.convert_shared(0, "16K")
        assert [(f.point, f.context["index"]) for f in sc.fired] == \
            [("tdh_mem_page_remove", 0), ("tdh_mem_range_block", 2)]
    assert not vm.dead
    host.check()
    host2, vm2, g2 = make(page_size="4K", size="64K")
    g2.guest_write(0, b"x" * 4 * 4096)
    with faults.scope() as sc, pytest.raises(ConversionError) as info:
        faults.inject("tdh_mem_range_block", faults.tdx_error("fatal"), nth=3)
        faults.inject("tdh_phymem_page_wbinvd_hkid", faults.tdx_error("fatal"), nth=1)
        g2.convert_shared(0, "16K")
    assert [f.point for f in sc.fired] == ["tdh_phymem_page_wbinvd_hkid"]  # entry 0 stops the run
    assert "TDH.PHYMEM.PAGE.WBINVD at 0x0" in str(info.value)
    assert vm2.seamcalls == 4 and "after the retries" not in (vm2.death or "")
    host2.check()


# --- 1G folios: TDX maps private memory at 2M at most (tdx_gmem_max_mapping_level) ------------
@pytest.mark.parametrize("revision", REVISIONS)
def test_a_1g_folio_is_mapped_as_2m_s_ept_entries(revision: str) -> None:
    host = Host(hugetlb={"1G": 2}, revision=revision)
    vm = host.create_vm(vm_type="tdx")
    g = vm.create_guest_memfd(size="1G", page_size="1G", mmap=True, init_private=True)
    g.guest_write(0, b"a")
    g.guest_write(5 * MB, b"b")
    assert g.guest_mapping_level(0) == g.guest_mapping_level(5 * MB) == "2M"
    assert g.guest_mapping_level(9 * MB) is None  # only what the guest touched
    with faults.scope(record=True) as sc:
        g.convert_shared(4096, 4096)  # splits the 1G folio; demotes only the first 2M entry
    assert [e.point for e in sc.trace if e.point == "tdh_mem_page_demote"] == ["tdh_mem_page_demote"]
    assert g.guest_mapping_level(0) == "4K" and g.guest_mapping_level(5 * MB) == "2M"
    assert g.guest_read(5 * MB, 1) == b"b"  # the 2M entry over the now split folio stays
    g.guest_write(9 * MB, b"c")  # a new fault over the split folio maps 4K
    assert g.guest_mapping_level(9 * MB) == "4K"
    host.check()
    g.convert_shared(0, "1G")  # every entry removed, the 2M one whole
    assert g.guest.ranges() == [] and not vm.dead
    host.check()


def test_a_2m_s_ept_entry_over_memory_of_another_huge_page_is_caught() -> None:
    """The relaxed rule for TDX still wants one huge page's memory, aligned."""
    from pytest_gmem.model.mmu import GMap

    host = Host(hugetlb={"1G": 2})
    vm = host.create_vm(vm_type="tdx")
    g = vm.create_guest_memfd(size="1G", page_size="1G", mmap=True, init_private=True)
    g.guest_write(0, b"a")
    g.guest.map.clear(0, 512)
    g.guest.map.put(256, 768, GMap("2M", True, 256))  # misaligned
    with pytest.raises(AssertionError, match=r"\[3 guest-map\].*2M at 0x100000"):
        host.check()
