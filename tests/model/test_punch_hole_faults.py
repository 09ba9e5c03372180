"""Punch hole over a split huge page when the merge before truncation fails (issue 14, defect 7).

The contract every revision is held to: a punch hole either fails with an errno, or succeeds and
the range reads back as zeros with no folio left in its whole huge pages; no huge page is lost;
the next fault-in of the range works once the deferred merge has run. ``rfc-v2`` breaks it
(defect 7): it WARNs, truncates only the first 4K piece and reports success.
"""

from __future__ import annotations

import pytest

import faults
from pytest_gmem import GuestMemfd, Host, InvariantViolation, KernelBug

POINTS = {
    "filemap_remove_folio_for_restructuring": faults.extra_refcount,
    "__kvm_gmem_filemap_add_folio": faults.enomem,
}


def split_file(revision: str, size: str, spare: int) -> tuple[Host, GuestMemfd]:
    """The issue's reproducer up to the punch: data in the first 2M page, split around a
    shared page at 1M. ``spare``: huge pages in the pool beyond the file's own."""
    pages = int(size.rstrip("M")) // 2
    host = Host(revision=revision, hugetlb={"2M": pages + spare})
    g = host.create_vm(vm_type="sw_protected").create_guest_memfd(
        size, mmap=True, init_private=True, page_size="2M")
    g.guest_write(0x1000, b"A" * 8)
    g.convert_shared(0x100000, "4K")
    return host, g


def punch_under(g: GuestMemfd, point: str, size: str) -> None:
    with faults.inject(point, POINTS[point](), nth=1):
        g.punch_hole(0, size)


@pytest.mark.parametrize("size", ["2M", "4M"])
@pytest.mark.parametrize("point", sorted(POINTS))
@pytest.mark.parametrize("revision", ["fixed", "prealloc"])
def test_punch_hole_keeps_its_contract_under_one_fault(revision: str, point: str, size: str) -> None:
    """fixed truncates every piece when the merge fails (or frees the merged folio that could not
    be re-added); prealloc cannot fail after its refcount check. Zeros, no WARN, no leak, and
    the next write faults the page in again."""
    host, g = split_file(revision, size, spare=0)
    punch_under(g, point, size)
    assert g.contents.read(0x1000, 8) == bytes(8)
    assert not list(g.filemap.all_runs())
    assert host.warnings == []
    host.check()
    host.flush_work()  # pieces freed one by one come back through the deferred merge
    pool = host.hugetlb_stats("2M")
    assert pool["free"] == pool["total"]
    g.guest_write(0, b"B" * 8)
    assert g.contents.read(0, 8) == b"B" * 8
    host.check()


@pytest.mark.parametrize("size", ["2M", "4M"])
def test_rfc_v2_punch_hole_truncates_only_the_first_piece(size: str) -> None:
    """defect 7: WARN_ON(merge) then truncate_inode_folio(f) of the 4K folio looked up: success
    is reported, 511 pieces keep their data, and the checker says so at the punch."""
    host, g = split_file("rfc-v2", size, spare=2)
    punch_under(g, "__kvm_gmem_filemap_add_folio", size)
    assert [w.where for w in host.warnings] == ["kvm_gmem_merge_truncate_indices"]
    assert g.contents.read(0x1000, 8) == b"A" * 8
    with pytest.raises(InvariantViolation) as e:
        host.check()
    text = str(e.value)
    assert "[8 punch]" in text and "folios remain at [0x1000, 0x200000)" in text
    assert "[0x1000, 0x2000) still holds data" in text


def test_rfc_v2_next_fault_after_the_partial_punch_livelocks() -> None:
    """The fault at index 0 allocates a huge folio and cannot add it over the pieces left
    behind: -EEXIST, put, retry, for ever."""
    _, g = split_file("rfc-v2", "4M", spare=2)
    punch_under(g, "__kvm_gmem_filemap_add_folio", "4M")
    with pytest.raises(KernelBug) as e:
        g.guest_write(0, b"B" * 8)
    assert e.value.function == "kvm_gmem_get_folio" and "-EEXIST" in e.value.detail


def test_rfc_v2_next_fault_without_a_spare_page_is_enomem() -> None:
    """With no huge page beyond the file's, the leftover pieces hold the subpool's only page."""
    _, g = split_file("rfc-v2", "2M", spare=0)
    punch_under(g, "__kvm_gmem_filemap_add_folio", "2M")
    with pytest.raises(OSError, match="subpool at its maximum"):
        g.guest_write(0, b"B" * 8)


@pytest.mark.parametrize("size", ["2M", "4M"])
def test_rfc_v2_speculative_reference_on_punch_is_the_unbounded_spin(size: str) -> None:
    """The other point under rfc-v2 is defect 3: the punch never returns."""
    _, g = split_file("rfc-v2", size, spare=0)
    with pytest.raises(KernelBug) as e:
        punch_under(g, "filemap_remove_folio_for_restructuring", size)
    assert e.value.function == "filemap_remove_folio_for_restructuring"


@pytest.mark.parametrize("revision", ["rfc-v2", "fixed", "prealloc"])
def test_punch_hole_without_faults_reads_zeros(revision: str) -> None:
    host, g = split_file(revision, "4M", spare=0)
    g.punch_hole(0, "4M")
    assert g.contents.read(0x1000, 8) == bytes(8)
    assert host.warnings == []
    host.check()


def test_a_partial_huge_page_punch_only_zeroes_and_is_no_breach() -> None:
    """A punch of part of a huge page keeps the memory (kvm_gmem_zero_range): no folio is
    expected to go, only the data."""
    host, g = split_file("fixed", "4M", spare=0)
    g.punch_hole(0x1000, "4K")
    assert g.contents.read(0x1000, 8) == bytes(8)
    assert list(g.filemap.all_runs())
    host.check()
