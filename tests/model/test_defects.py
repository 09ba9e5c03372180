"""The known defects of RFC v2 (MODEL.md "Known defects", plus defect 5 found reading the
posted 04/51 patch): each reproduces under ``rfc-v2`` and is absent under ``fixed`` and
``prealloc``; plus the prealloc guarantee that no
single failure leaves a WARN or a half-done conversion."""

from __future__ import annotations

import errno

import pytest

import faults
from pytest_gmem import ConversionError, GuestMemfd, Host, KernelBug, SigBus

MB2 = 2 << 20


def make(revision: str, huge_pages: int = 4) -> tuple[Host, GuestMemfd]:
    host = Host(hugetlb={"2M": 16}, revision=revision)
    g = host.create_vm().create_guest_memfd(size=huge_pages * MB2, mmap=True, init_private=True, page_size="2M")
    g.fallocate(1, 0, g.size)
    g.guest_write(0, b"private data")
    return host, g


# --- defect 1: rollback underflow ------------------------------------------------------------------
def test_rollback_underflow_is_a_kernel_bug_under_rfc_v2() -> None:
    """A split failing at index 0 makes the unsigned rollback loop run forever."""
    _, g = make("rfc-v2")
    with faults.inject("__kvm_gmem_filemap_add_folio", "ENOMEM", nth=1), pytest.raises(KernelBug) as e:
        g.convert_shared(0, 4096)
    assert e.value.function == "kvm_gmem_restructure_folios_in_range"
    assert "underflow" in e.value.detail and "never terminates" in e.value.detail


def test_rollback_underflow_also_after_successful_unwinding() -> None:
    """With start == 0 the loop condition stays true even after the in-range undos ran."""
    _, g = make("rfc-v2")
    with faults.inject("guestmem_hugetlb_stash_metadata", "ENOMEM", nth=2), pytest.raises(KernelBug):
        g.convert_shared(0, 2 * MB2)


def test_rollback_from_nonzero_start_terminates_under_rfc_v2() -> None:
    host, g = make("rfc-v2")
    before = g.snapshot()
    with faults.inject("guestmem_hugetlb_stash_metadata", "ENOMEM", nth=2), \
            pytest.raises(ConversionError) as e:
        g.convert_shared(MB2, 2 * MB2)
    assert e.value.errno == errno.ENOMEM
    assert g.snapshot() == before
    host.check()


@pytest.mark.parametrize("revision", ["fixed", "prealloc"])
def test_no_underflow_after_fix(revision: str) -> None:
    host, g = make(revision)
    before = g.snapshot()
    with faults.inject("__kvm_gmem_filemap_add_folio", "ENOMEM", nth=1), pytest.raises(ConversionError) as e:
        g.convert_shared(0, 4096)
    assert e.value.errno == errno.ENOMEM and e.value.error_offset == 0
    assert g.snapshot() == before
    assert host.warnings == []
    host.check()
    g.convert_shared(0, 4096)  # and it works once memory is back
    assert g.shareability(0) == "shared"
    host.check()


# --- defect 2: ENOMEM during rollback only WARNs, leaving the state inconsistent -------------------
@pytest.mark.parametrize("revision", ["rfc-v2", "fixed"])
def test_enomem_in_rollback_warns_and_breaks_invariants(revision: str) -> None:
    host, g = make(revision)
    with faults.inject("guestmem_hugetlb_stash_metadata", "ENOMEM", nth=2), \
            faults.inject("kvm_gmem_shareability_store", "ENOMEM", when={"phase": "rollback"}), \
            pytest.raises(ConversionError) as e:
        g.convert_shared(MB2, 2 * MB2)
    assert e.value.errno == errno.ENOMEM
    assert [w.where for w in host.warnings] == ["kvm_gmem_convert_range"]
    assert "kvm_gmem_shareability_store:ENOMEM" in (host.warnings[0].fault or "")
    problems = host.violations()
    assert problems and all(p.startswith("[2 split]") for p in problems)


def test_merge_rollback_split_failure_warns_under_fixed() -> None:
    """Yan Zhao's case: after a merge freed the stash, the undo split fails with ENOMEM."""
    host, g = make("fixed")
    g.convert_shared(MB2, 4096)
    with faults.inject("__kvm_gmem_filemap_add_folio", "ENOMEM", when={"phase": "forward", "folio_order": 9}), \
            faults.inject("guestmem_hugetlb_stash_metadata", "ENOMEM", when={"phase": "rollback"}), \
            pytest.raises(ConversionError):
        g.convert_private(MB2, 4096)
    assert any(w.where == "kvm_gmem_merge_folio_in_filemap" for w in host.warnings)


def test_prealloc_rollback_faults_cannot_happen() -> None:
    host, g = make("prealloc")
    before = g.snapshot()
    with faults.inject("guestmem_hugetlb_stash_metadata", "ENOMEM", nth=2), \
            faults.inject("kvm_gmem_shareability_store", "ENOMEM", when={"phase": "rollback"}) as rb, \
            pytest.raises(ConversionError):
        g.convert_shared(MB2, 2 * MB2)
    assert rb.hits == 0  # there is no rollback phase
    assert host.warnings == [] and g.snapshot() == before
    host.check()


# --- defect 3: unbounded spin on speculative references ---------------------------------------------
def test_unbounded_spin_is_a_kernel_bug_under_rfc_v2() -> None:
    host, g = make("rfc-v2")
    with faults.inject("filemap_remove_folio_for_restructuring", faults.speculative_refcount(hold=None)), \
            pytest.raises(KernelBug) as e:
        g.convert_shared(MB2, 4096)
    assert e.value.function == "filemap_remove_folio_for_restructuring"
    assert any("Spinning on folio" in w.message for w in host.warnings)


def test_short_speculative_reference_only_warns_under_rfc_v2() -> None:
    host, g = make("rfc-v2")
    with faults.inject("filemap_remove_folio_for_restructuring", faults.speculative_refcount(hold=3)):
        g.convert_shared(MB2, 4096)
    assert g.shareability(MB2) == "shared"
    assert [w.where for w in host.warnings] == ["filemap_remove_folio_for_restructuring"]
    host.check()


@pytest.mark.parametrize("revision", ["fixed", "prealloc"])
def test_bounded_spin_reports_eagain(revision: str) -> None:
    host, g = make(revision)
    before = g.snapshot()
    with faults.inject("filemap_remove_folio_for_restructuring", faults.speculative_refcount(hold=None)), \
            pytest.raises(ConversionError) as e:
        g.convert_shared(MB2 + 4096, 4096)
    assert e.value.errno == errno.EAGAIN
    assert e.value.error_offset == MB2 if revision == "fixed" else e.value.error_offset == MB2 + 4096
    assert g.snapshot() == before and host.warnings == []
    host.check()
    g.convert_shared(MB2 + 4096, 4096)  # the arming ended: the references are gone
    host.check()


@pytest.mark.parametrize("revision", ["fixed", "prealloc"])
def test_short_speculative_reference_is_waited_for(revision: str) -> None:
    host, g = make(revision)
    with faults.inject("filemap_remove_folio_for_restructuring", faults.speculative_refcount(hold=3)):
        g.convert_shared(MB2, 4096)
    assert g.shareability(MB2) == "shared" and host.warnings == []


# --- defect 4: error_offset uninitialised on ENOMEM ------------------------------------------------
@pytest.mark.parametrize("point", ["kvm_gmem_shareability_store", "hugetlb_vmemmap_restore_folio"])
def test_error_offset_uninitialised_on_enomem_under_rfc_v2(point: str) -> None:
    _, g = make("rfc-v2")
    with faults.inject(point, "ENOMEM"), pytest.raises(ConversionError) as e:
        g.convert_shared(MB2 + 8192, 4096)
    assert e.value.errno == errno.ENOMEM
    assert not e.value.error_offset_valid
    assert e.value.error_offset != MB2 + 8192 and e.value.error_offset >= 1 << 63


@pytest.mark.parametrize("revision", ["fixed", "prealloc"])
@pytest.mark.parametrize("point", ["kvm_gmem_convert_compute_work", "kvm_gmem_shareability_store",
                                   "hugetlb_vmemmap_restore_folio"])
def test_error_offset_is_request_start_on_enomem(revision: str, point: str) -> None:
    _, g = make(revision)
    with faults.inject(point, "ENOMEM"), pytest.raises(ConversionError) as e:
        g.convert_shared(MB2 + 8192, 4096)
    assert e.value.errno == errno.ENOMEM and e.value.error_offset == MB2 + 8192
    assert e.value.error_offset_valid


# --- defect 5: compute_work's ENOMEM swallowed (shadowed ``int ret``) ------------------------------
def _two_shared_pages(revision: str) -> GuestMemfd:
    """Pages 1 and 3 shared, so converting [0, 16K) to private computes two work items."""
    _, g = make(revision)
    g.convert_shared(4096, 4096)
    g.convert_shared(3 * 4096, 4096)
    return g


@pytest.mark.parametrize("nth", [1, 2])
def test_compute_work_enomem_is_swallowed_under_rfc_v2(nth: int) -> None:
    g = _two_shared_pages("rfc-v2")
    with faults.inject("kvm_gmem_convert_compute_work", "ENOMEM", nth=nth) as a:
        g.convert_private(0, 4 * 4096)  # reports success
    assert a.fired == 1
    # the items allocated before the failure were converted, the rest silently were not
    assert g.shareability(4096) == ("shared" if nth == 1 else "private")
    assert g.shareability(3 * 4096) == "shared"
    assert g.host.warnings == []


@pytest.mark.parametrize("revision", ["fixed", "prealloc"])
@pytest.mark.parametrize("nth", [1, 2])
def test_compute_work_enomem_is_returned(revision: str, nth: int) -> None:
    g = _two_shared_pages(revision)
    before = g.snapshot()
    with faults.inject("kvm_gmem_convert_compute_work", "ENOMEM", nth=nth), \
            pytest.raises(ConversionError) as e:
        g.convert_private(0, 4 * 4096)
    assert e.value.errno == errno.ENOMEM and e.value.error_offset == 0
    assert g.snapshot() == before


# --- a host fault past EOF WARNs in rfc-v2 (no entry in the shareability tree) -----------------------
@pytest.mark.parametrize("revision", ["rfc-v2", "fixed", "prealloc"])
def test_host_fault_past_eof(revision: str) -> None:
    host = Host(hugetlb={"2M": 4}, revision=revision)
    g = host.create_vm().create_guest_memfd(size=MB2, mmap=True, page_size="2M")
    m = g.mmap()
    with pytest.raises(SigBus) as e:
        m.read(MB2 - 4096, 8192)
    assert e.value.offset == MB2
    where = [w.where for w in host.warnings]
    assert where == (["kvm_gmem_shareability_get"] if revision == "rfc-v2" else [])


# --- prealloc: no single failure leaves a WARN or a half-done conversion -----------------------------
def _reachable(scope: faults.Scope) -> dict[str, int]:
    return {p: n for p, n in scope.census.items()}


@pytest.mark.parametrize("to_shared", [True, False])
def test_prealloc_single_fault_sweep_is_clean(to_shared: bool) -> None:
    """Every (point, kind, nth) a conversion reaches: a clean error with the state restored, or
    success; never a WARN, an invariant violation or a KernelBug."""

    def setup() -> tuple[Host, GuestMemfd]:
        host, g = make("prealloc")
        if not to_shared:
            g.convert_shared(MB2, MB2)
        return host, g

    def op(g: GuestMemfd) -> None:
        if to_shared:
            g.convert_shared(MB2 - 4096, MB2 + 8192)
        else:
            g.convert_private(MB2, MB2)

    host, g = setup()
    with faults.scope(record=True) as census:
        op(g)
    scenarios = 0
    for name, hits in _reachable(census).items():
        point = faults.get_point(name)
        for kind in sorted(point.kinds):
            for nth in range(1, min(hits, 4) + 1):
                host, g = setup()
                before = g.snapshot()
                spec = kind == "speculative_refcount"
                arg: faults.Kind | str = faults.speculative_refcount(hold=None) if spec else kind
                with faults.inject(name, arg, nth=nth):
                    try:
                        op(g)
                    except ConversionError:
                        assert g.snapshot() == before, (name, kind, nth)
                assert host.warnings == [], (name, kind, nth, host.warnings)
                assert host.violations() == [], (name, kind, nth)
                scenarios += 1
    assert scenarios >= 8


def test_fixed_bounded_spin_inside_split_rollback_warns_and_keeps_the_folio_split() -> None:
    """fixed: a speculative reference that outlives the bounded spin while undoing a split
    cannot be reported (rollback cannot fail): WARN, and the folio stays split but complete."""
    host, g = make("fixed")
    with faults.inject("__kvm_gmem_filemap_add_folio", "ENOMEM", nth=3, when={"phase": "forward"}), \
            faults.inject("filemap_remove_folio_for_restructuring", faults.speculative_refcount(hold=None),
                          when={"phase": "rollback"}), pytest.raises(ConversionError) as e:
        g.convert_shared(0, 4096)
    assert e.value.errno == errno.ENOMEM
    assert any(w.where == "kvm_gmem_split_folio_in_filemap" and "stays split" in w.message for w in host.warnings)
    assert g.ranges() == [(0, g.size, "private")]
    assert host.violations() == []
    assert g.folios().__next__() == (0, 1, 1)  # split into 4K folios, none lost
    g.convert_shared(0, 4096)
    g.convert_private(0, 4096)  # and the huge page merges again once the arming ended
    assert next(iter(g.folios())) == (0, 512, 512)


# --- invariant 7: a failed conversion changed nothing (host.check_rollback) ------------------------
@pytest.mark.parametrize("revision", ["fixed", "prealloc"])  # rfc-v2: the rollback underflow
def test_single_faults_leave_the_file_as_it_was(revision: str) -> None:
    host = Host(hugetlb={"2M": 16}, revision=revision, check_rollback=True)
    g = host.create_vm().create_guest_memfd(size=4 * MB2, mmap=True, init_private=True, page_size="2M")
    g.guest_write(0, b"private data")
    g.guest_write(MB2, b"second page")
    failed = 0
    for point in ("kvm_gmem_shareability_store", "__kvm_gmem_filemap_add_folio", "guestmem_hugetlb_stash_metadata"):
        for nth in (1, 2, 3, 200):
            try:
                with faults.inject(point, "ENOMEM", nth=nth):
                    g.convert_shared(MB2 - 8192, 4 * 4096)  # splits both huge pages
            except ConversionError:
                failed += 1
            else:
                g.convert_private(MB2 - 8192, 4 * 4096)
    assert failed >= 5
    assert host.rollback_failures == [] and host.violations() == []


def test_a_silent_partial_conversion_is_an_invariant_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A revision whose rollback silently skipped work (no WARN) would return ENOMEM with the file
    half converted: the check sees it, the plain invariants alone do not."""
    from pytest_gmem.model import conversion

    real = conversion.execute_work

    def no_rollback(g: GuestMemfd, w: conversion.Work, to_shared: bool, phase: str) -> None:
        if phase != "rollback":
            real(g, w, to_shared, phase)

    for check in (False, True):
        host = Host(hugetlb={"2M": 16}, revision="fixed", check_rollback=check)
        g = host.create_vm().create_guest_memfd(size=4 * MB2, mmap=True, init_private=True, page_size="2M")
        g.convert_shared(4096, 4096)  # convert_shared(0, 16K) then has two work items: [0, 4K), [8K, 16K)
        monkeypatch.setattr(conversion, "execute_work", no_rollback)
        with faults.inject("kvm_gmem_shareability_store", "ENOMEM", nth=2), pytest.raises(ConversionError):
            g.convert_shared(0, 4 * 4096)  # the second item's store fails; the first is never undone
        monkeypatch.setattr(conversion, "execute_work", real)
        assert g.shareability(0) == "shared" and host.warnings == []
        rollback = [v for v in host.violations() if v.startswith("[7 rollback]")]
        assert bool(rollback) == check, host.violations()


def test_the_rollback_check_compares_only_the_conversions_window() -> None:
    """check_rollback snapshots the conversion's range rounded out to huge pages (what a
    conversion can change) plus the pool counters, so its cost grows with the ranges there,
    not with the file: a 1 GiB file with 256 split huge pages still gives a small window."""
    from pytest_gmem.model.conversion import _rollback_window
    from pytest_gmem.model.snapshot import take

    host = Host(hugetlb={"2M": 600}, revision="fixed", check_rollback=True)
    g = host.create_vm().create_guest_memfd(size="1G", mmap=True, init_private=True, page_size="2M")
    for k in range(256):
        g.guest_write(k * MB2, b"x")
        g.convert_shared(k * MB2 + 4096, 4096)  # every huge page split around one shared page
    window = _rollback_window(g, 512 + 3, 1)
    assert window == (512, 1024)
    whole, part = take(g), take(g, window)
    assert len(whole.ranges) > 500 and len(part.ranges) == 3
    assert len(part.contents) == 1 and dict(part.allocator)["split_huge_pages"] == 1
    assert dict(part.allocator)["subpool_used"] == dict(whole.allocator)["subpool_used"]
    # and a failure inside the window is still checked: a silent change there is reported
    with faults.inject("kvm_gmem_shareability_store", "ENOMEM"), pytest.raises(ConversionError):
        g.convert_shared(MB2 + 8192, 4096)
    assert host.rollback_failures == [] and host.violations() == []


def test_a_corruption_outside_the_window_is_left_to_the_after_test_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rollback check compares only the conversion's window; a rollback that (wrongly)
    changed a page elsewhere passes it, and the invariants checked after every test find it:
    here a huge folio outside the window left covering a shared page."""
    from pytest_gmem.model import conversion
    from pytest_gmem.model.shareability import SHARED

    real = conversion.execute_work

    def stray_rollback(g: GuestMemfd, w: conversion.Work, to_shared: bool, phase: str) -> None:
        real(g, w, to_shared, phase)
        if phase == "rollback":
            g.share.store(1024 + 7, 1024 + 8, SHARED)  # one page of the third huge page

    host = Host(hugetlb={"2M": 16}, revision="fixed", check_rollback=True)
    g = host.create_vm().create_guest_memfd(size=4 * MB2, mmap=True, init_private=True, page_size="2M")
    g.guest_write(2 * MB2, b"third huge page")  # a huge folio outside the window
    g.convert_shared(4096, 4096)  # convert_shared(0, 16K) then has two work items: [0, 4K), [8K, 16K)
    monkeypatch.setattr(conversion, "execute_work", stray_rollback)
    with faults.inject("kvm_gmem_shareability_store", "ENOMEM", nth=2), pytest.raises(ConversionError):
        g.convert_shared(0, 4 * 4096)
    monkeypatch.setattr(conversion, "execute_work", real)
    assert host.rollback_failures == []  # the window [0, 2M) is as it was
    assert [v for v in host.violations() if v.startswith("[2 split]") and "0x400000" in v], host.violations()


# --- defect 6: the inner rollback undoes huge pages the forward loop never touched -------------
@pytest.mark.parametrize("revision", ["rfc-v2", "fixed", "prealloc"])
def test_rollback_merges_a_page_split_before_the_conversion(revision: str) -> None:
    """[reading of the code] kvm_gmem_restructure_folios_in_range's rollback walks back from the
    failing huge page and merges every one before it. A huge page split before the conversion
    (around a shared page) was left alone by the forward loop, yet rfc-v2 merges it: a huge
    folio over a shared page, without a WARN. fixed undoes only what it split."""
    host = Host(hugetlb={"2M": 16}, revision=revision, check_rollback=True)
    g = host.create_vm().create_guest_memfd(size=3 * MB2, mmap=True, init_private=True, page_size="2M")
    for k in range(3):
        g.guest_write(k * MB2, b"page")
    g.convert_shared(MB2 + 4096, 4096)  # the second huge page is split around a shared page
    with faults.inject("guestmem_hugetlb_stash_metadata", "ENOMEM"), pytest.raises(ConversionError) as info:
        g.convert_shared(2 * MB2 - 4096, 8192)  # splitting the third huge page fails
    assert info.value.errno == errno.ENOMEM and host.warnings == []
    assert g.shareability(MB2 + 4096) == "shared"
    second = [f for f in g.folios() if f[0] == MB2]
    if revision == "rfc-v2":
        assert second == [(MB2, 512, 512)]  # merged over its shared page
        assert any(v.startswith("[2 split]") for v in host.violations())
    else:
        assert second == [(MB2, 1, 1)]
        assert host.violations() == []
