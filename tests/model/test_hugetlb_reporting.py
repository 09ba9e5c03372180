"""Port of RFC v2 `guest_memfd_hugetlb_reporting_test.c` (KERNEL-NOTES 2.3, 6.3) and the
HugeTLB accounting around it (2.2: subpool reserving the whole file, deferred merge).

`host.hugetlb_stats(size)` stands for /sys/kernel/mm/hugepages/hugepages-*/: relative to
the baseline, with R pages reserved and F faulted, `free = base - F` and
`resv = base + R - F`; `total` (nr_hugepages) never changes.
"""

from __future__ import annotations

import errno

import pytest
from gmem_testlib import (
    FALLOC_FL_KEEP_SIZE,
    HUGE_PAGE_SIZES,
    PAGE_SIZE,
    UNIT_BYTES,
    Gmem,
    assert_clean,
    gmem_flags,
    hugetlb_flags,
    new_host,
    unit_layout,
)

from pytest_gmem import Host

POOL = 8


@pytest.fixture(params=HUGE_PAGE_SIZES)
def page_size(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_host(page_size: str, pool: int = POOL) -> Host:
    other = "1G" if page_size == "2M" else "2M"
    return new_host(pools={page_size: pool, other: 3})


def stats(host: Host, page_size: str) -> tuple[int, int, int]:
    s = host.hugetlb_stats(page_size)
    return (s["free"], s["resv"], s["total"])


def assert_other_pool_untouched(host: Host, page_size: str) -> None:
    other = "1G" if page_size == "2M" else "2M"
    assert stats(host, other) == (3, 0, 3)


@pytest.mark.parametrize(
    "flags_kind", ["hugetlb-only", "support-shared", "init-private"],
)
def test_guest_memfd_reporting_sequence(page_size: str, flags_kind: str) -> None:
    """Ports guest_memfd_hugetlb_reporting_test.c (RFC v2) for guest_memfd, 2M and 1G.

    create VM (0,0) -> create a 1-page gmem (R=1,F=0) -> fallocate KEEP_SIZE (R=1,F=1)
    -> PUNCH_HOLE the page (R=1,F=0) -> close (baseline).
    """
    host = make_host(page_size)
    unit = UNIT_BYTES[page_size]
    assert stats(host, page_size) == (POOL, 0, POOL)

    vm = host.create_vm(vm_type="sw_protected")
    assert stats(host, page_size) == (POOL, 0, POOL)

    flags = {
        "hugetlb-only": hugetlb_flags(page_size),
        "support-shared": gmem_flags(page_size, init_private=False),
        "init-private": gmem_flags(page_size, init_private=True),
    }[flags_kind]
    gmem: Gmem = vm.create_guest_memfd(size=unit, flags=flags)
    assert stats(host, page_size) == (POOL, 1, POOL), "creation reserves the whole file"

    gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, unit)
    assert stats(host, page_size) == (POOL - 1, 0, POOL)
    gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, unit)  # already allocated: no change
    assert stats(host, page_size) == (POOL - 1, 0, POOL)

    gmem.punch_hole(0, unit)
    assert list(gmem.folios()) == []
    assert stats(host, page_size) == (POOL, 1, POOL), "punched page goes back to the subpool"

    gmem.close()
    host.flush_work()
    assert stats(host, page_size) == (POOL, 0, POOL)
    assert_other_pool_untouched(host, page_size)
    assert_clean(host)


def test_conversion_does_not_change_stats(page_size: str) -> None:
    """Split and merge on conversion keep the huge page in use: no change to free/resv."""
    host = make_host(page_size)
    unit = UNIT_BYTES[page_size]
    vm = host.create_vm(vm_type="sw_protected")
    gmem: Gmem = vm.create_guest_memfd(size=2 * unit, flags=gmem_flags(page_size, init_private=True))
    gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, unit)
    assert stats(host, page_size) == (POOL - 1, 1, POOL)
    gmem.convert_shared(PAGE_SIZE, PAGE_SIZE)
    assert unit_layout(gmem, unit, 2) == ["S", "-"]
    assert stats(host, page_size) == (POOL - 1, 1, POOL)
    gmem.convert_private(PAGE_SIZE, PAGE_SIZE)
    assert unit_layout(gmem, unit, 2) == ["F", "-"]
    host.flush_work()
    assert stats(host, page_size) == (POOL - 1, 1, POOL)
    gmem.close()
    host.flush_work()
    assert stats(host, page_size) == (POOL, 0, POOL)
    assert_clean(host)


def test_create_larger_than_pool_is_enomem(page_size: str) -> None:
    """guestmem_hugetlb_setup: `hugepage_new_subpool(h, n, n)` cannot reserve -> ENOMEM (2.2);
    a refused creation leaves the counters alone, and reservations of open files count."""
    host = make_host(page_size)
    unit = UNIT_BYTES[page_size]
    vm = host.create_vm(vm_type="sw_protected")
    flags = gmem_flags(page_size, init_private=False)
    with pytest.raises(OSError) as e:
        vm.create_guest_memfd(size=(POOL + 1) * unit, flags=flags)
    assert e.value.errno == errno.ENOMEM
    assert stats(host, page_size) == (POOL, 0, POOL)

    big: Gmem = vm.create_guest_memfd(size=(POOL - 1) * unit, flags=flags)
    assert stats(host, page_size) == (POOL, POOL - 1, POOL)
    with pytest.raises(OSError) as e:
        vm.create_guest_memfd(size=2 * unit, flags=flags)
    assert e.value.errno == errno.ENOMEM
    assert stats(host, page_size) == (POOL, POOL - 1, POOL)
    last: Gmem = vm.create_guest_memfd(size=unit, flags=flags)
    assert stats(host, page_size) == (POOL, POOL, POOL)
    big.close()
    last.close()
    host.flush_work()
    assert stats(host, page_size) == (POOL, 0, POOL)
    assert_other_pool_untouched(host, page_size)
    assert_clean(host)


def test_empty_pool_is_enomem(page_size: str) -> None:
    """A pool with no pages of that size: creating a HugeTLB guest_memfd gives ENOMEM."""
    host = make_host(page_size, pool=0)
    vm = host.create_vm(vm_type="sw_protected")
    with pytest.raises(OSError) as e:
        vm.create_guest_memfd(size=UNIT_BYTES[page_size], flags=gmem_flags(page_size, init_private=True))
    assert e.value.errno == errno.ENOMEM
    assert stats(host, page_size) == (0, 0, 0)
    assert_clean(host)


def test_split_pieces_return_only_after_deferred_merge(page_size: str) -> None:
    """guestmem_hugetlb free_folio / handle_folio_put (2.2): the freed 4K pieces of a split
    huge page are counted by a workqueue and merged back when all are free; only then is
    the page returned to HugeTLB. `host.flush_work()` runs that workqueue.

    Closing the file truncates without merging (mapping_exiting), so a split unit's pieces
    take the deferred path; an unsplit (private) unit goes back directly.
    """
    host = make_host(page_size)
    unit = UNIT_BYTES[page_size]
    vm = host.create_vm(vm_type="sw_protected")
    gmem: Gmem = vm.create_guest_memfd(size=2 * unit, flags=gmem_flags(page_size, init_private=False))
    gmem.convert_private(unit, unit)
    gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, 2 * unit)
    assert unit_layout(gmem, unit, 2) == ["S", "F"]
    assert stats(host, page_size) == (POOL - 2, 0, POOL)

    gmem.close()
    free_before_work = host.hugetlb_stats(page_size)["free"]
    assert free_before_work == POOL - 1, "the split page must wait for the deferred merge"
    host.flush_work()
    assert stats(host, page_size) == (POOL, 0, POOL)
    host.flush_work()  # nothing left to do
    assert stats(host, page_size) == (POOL, 0, POOL)
    assert_clean(host)


def test_punching_a_split_page_merges_first(page_size: str) -> None:
    """kvm_gmem_truncate_inode_aligned_pages (2.4): a whole huge page holding shared pages is
    merged, then truncated as one folio, so it returns to the subpool at once."""
    host = make_host(page_size)
    unit = UNIT_BYTES[page_size]
    vm = host.create_vm(vm_type="sw_protected")
    gmem: Gmem = vm.create_guest_memfd(size=unit, flags=gmem_flags(page_size, init_private=False))
    m = gmem.mmap()
    m.write(unit - 3, b"end")
    assert unit_layout(gmem, unit, 1) == ["S"]
    assert stats(host, page_size) == (POOL - 1, 0, POOL)
    gmem.punch_hole(0, unit)
    assert list(gmem.folios()) == []
    assert stats(host, page_size) == (POOL, 1, POOL)
    assert m.read(unit - 3, 3) == b"\0\0\0"
    m.munmap()
    gmem.close()
    host.flush_work()
    assert stats(host, page_size) == (POOL, 0, POOL)
    assert_clean(host)


def test_4k_guest_memfd_leaves_pools_alone() -> None:
    """A guest_memfd without HUGETLB never touches the HugeTLB counters."""
    host = new_host(pools={"2M": 4, "1G": 2})
    vm = host.create_vm(vm_type="sw_protected")
    gmem: Gmem = vm.create_guest_memfd(size=64 << 20, flags=gmem_flags("4K", init_private=False))
    gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, 64 << 20)
    gmem.convert_private(0, 8 << 20)
    assert stats(host, "2M") == (4, 0, 4)
    assert stats(host, "1G") == (2, 0, 2)
    gmem.close()
    host.flush_work()
    assert stats(host, "2M") == (4, 0, 4)
    assert_clean(host)
