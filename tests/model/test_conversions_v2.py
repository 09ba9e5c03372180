"""Port of RFC v2 `tools/testing/selftests/kvm/guest_memfd_conversions_test.c` (KERNEL-NOTES 6.1).

Every case runs for page sizes 4K, 2M and 1G ("unit" = the page size, 4K without HugeTLB)
and under every model revision: the selftests pass on the RFC v2 kernel, and a fault-free
run must look the same whatever the revision. Host access goes through `gmem.mmap()`
(a SIGBUS becomes `SigBus`), guest access through `gmem.guest_read/guest_write`, the
gup_test PIN_LONGTERM pins through `m.pin()`.
"""

from __future__ import annotations

import errno

import pytest
from gmem_testlib import (
    FALLOC_FL_KEEP_SIZE,
    PAGE_SIZE,
    PAGE_SIZES,
    PROBE_LEN,
    REVISIONS,
    UNIT_BYTES,
    Gmem,
    Mapping,
    assert_clean,
    assert_host_sigbus,
    assert_sigbus_at,
    expected_ranges,
    extra_refs,
    guest_rmw,
    host_rmw,
    new_gmem,
    new_host,
    probe,
    unit_layout,
)

from pytest_gmem import ConversionError, Host


@pytest.fixture(params=PAGE_SIZES)
def page_size(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=REVISIONS)
def revision(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def split_or_whole(page_size: str) -> str:
    """Layout letter of a fully allocated unit that contains a shared page."""
    return "F" if page_size == "4K" else "S"


def teardown(host: Host, gmem: Gmem, *maps: Mapping) -> None:
    """Drop every mapping and the fd, run deferred work; the pools are whole again (invariant 4)."""
    for m in maps:
        m.munmap()
    gmem.close()
    host.flush_work()
    for size, pool in (("2M", 64), ("1G", 20)):
        stats = host.hugetlb_stats(size)
        assert (stats["free"], stats["resv"], stats["total"]) == (pool, 0, pool), (size, stats)
    assert_clean(host)


def test_sharing(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2) test_sharing."""
    host = new_host(revision)
    unit = UNIT_BYTES[page_size]
    gmem = new_gmem(host, page_size, 1, init_private=False)
    m = gmem.mmap()

    host_rmw(m, 0, unit, None, "A")
    guest_rmw(gmem, 0, unit, "A", "B")

    gmem.convert_private(0, unit)
    assert gmem.ranges() == [(0, unit, "private")]
    assert gmem.shareability(unit - PAGE_SIZE) == "private"
    assert_host_sigbus(m, 0, unit)
    guest_rmw(gmem, 0, unit, "B", "C")
    # The whole unit is private again: merged into one folio, mappable at the unit's level.
    assert unit_layout(gmem, unit, 1) == ["F"]
    # to_private unmapped the host and, through the MMU notifier, the guest's shared
    # mappings: the guest faulted afresh, at the unit's level (3.2 kvm_gmem_mapping_order).
    assert gmem.guest_mapping_level(unit - PROBE_LEN) == page_size

    gmem.convert_shared(0, unit)
    assert gmem.guest_mapping_level(0) is None  # kvm_gmem_unmap_private zapped it (1.3)
    assert gmem.ranges() == [(0, unit, "shared")]
    host_rmw(m, 0, unit, "C", "D")
    guest_rmw(gmem, 0, unit, "D", "E")
    host_rmw(m, 0, unit, "E", None)
    assert unit_layout(gmem, unit, 1) == [split_or_whole(page_size)]
    assert gmem.guest_mapping_level(0) == "4K"
    teardown(host, gmem, m)


def test_init_mappable_false(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2) test_init_mappable_false (INIT_PRIVATE)."""
    host = new_host(revision)
    unit = UNIT_BYTES[page_size]
    gmem = new_gmem(host, page_size, 1, init_private=True)
    m = gmem.mmap()

    assert gmem.ranges() == [(0, unit, "private")]
    assert_host_sigbus(m, 0, unit)
    guest_rmw(gmem, 0, unit, "\0", "A")
    assert unit_layout(gmem, unit, 1) == ["F"]
    assert gmem.guest_mapping_level(0) == page_size

    gmem.convert_shared(0, unit)
    assert gmem.guest_mapping_level(0) is None  # kvm_gmem_unmap_private zapped it (1.3)
    host_rmw(m, 0, unit, "A", "B")
    guest_rmw(gmem, 0, unit, "B", "C")
    host_rmw(m, 0, unit, "C", None)
    teardown(host, gmem, m)


def test_conversion_before_allocation(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2) test_conversion_before_allocation."""
    host = new_host(revision)
    unit = UNIT_BYTES[page_size]
    gmem = new_gmem(host, page_size, 1, init_private=False)
    m = gmem.mmap()
    assert unit_layout(gmem, unit, 1) == ["-"]

    gmem.convert_private(0, unit)
    assert unit_layout(gmem, unit, 1) == ["-"], "conversion must not allocate"
    assert gmem.ranges() == [(0, unit, "private")]
    assert_host_sigbus(m, 0, unit)
    guest_rmw(gmem, 0, unit, "\0", "A")

    gmem.convert_shared(0, unit)
    host_rmw(m, 0, unit, "A", "B")
    guest_rmw(gmem, 0, unit, "B", None)
    teardown(host, gmem, m)


def test_conversion_if_not_all_folios_allocated(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2) test_conversion_if_not_all_folios_allocated."""
    nr_units = 16
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    for page_to_fault in range(nr_units):
        gmem = new_gmem(host, page_size, nr_units, init_private=False)
        m = gmem.mmap()
        faulted = {page_to_fault, 8}
        for u in sorted(faulted):
            host_rmw(m, u * unit, unit, None, "A")
        layout = ["-"] * nr_units
        for u in faulted:
            layout[u] = split_or_whole(page_size)
        assert unit_layout(gmem, unit, nr_units) == layout

        gmem.convert_private(0, nr_units * unit)
        assert gmem.ranges() == [(0, nr_units * unit, "private")]
        for u in faulted:
            layout[u] = "F"  # fully private again: merged back
        assert unit_layout(gmem, unit, nr_units) == layout
        for u in range(nr_units):
            assert_host_sigbus(m, u * unit, unit)
            guest_rmw(gmem, u * unit, unit, "A" if u in faulted else "\0", "B")

        gmem.convert_shared(0, nr_units * unit)
        assert gmem.ranges() == [(0, nr_units * unit, "shared")]
        for u in range(nr_units):
            host_rmw(m, u * unit, unit, "B", "C")
            guest_rmw(gmem, u * unit, unit, "C", "D")
        m.munmap()
        gmem.close()
        host.flush_work()
    teardown_pools_only(host)


def teardown_pools_only(host: Host) -> None:
    host.flush_work()
    for size, pool in (("2M", 64), ("1G", 20)):
        stats = host.hugetlb_stats(size)
        assert (stats["free"], stats["resv"]) == (pool, 0), (size, stats)
    assert_clean(host)


def test_conversions_should_not_affect_surrounding_pages(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2) test_conversions_should_not_affect_surrounding_pages."""
    nr_units, target = 4, 2
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, nr_units, init_private=False)
    m = gmem.mmap()
    for u in range(nr_units):
        host_rmw(m, u * unit, unit, None, "A")
        guest_rmw(gmem, u * unit, unit, "A", "B")

    gmem.convert_private(target * unit, unit)
    assert gmem.ranges() == [
        (0, target * unit, "shared"),
        (target * unit, (target + 1) * unit, "private"),
        ((target + 1) * unit, nr_units * unit, "shared"),
    ]
    split = split_or_whole(page_size)
    assert unit_layout(gmem, unit, nr_units) == [split, split, "F", split]
    assert_host_sigbus(m, target * unit, unit)
    guest_rmw(gmem, target * unit, unit, "B", None)
    for u in range(nr_units):
        if u != target:
            host_rmw(m, u * unit, unit, "B", "C")
            guest_rmw(gmem, u * unit, unit, "C", None)
    for u in range(nr_units):
        guest_rmw(gmem, u * unit, unit, None, "D")

    gmem.convert_shared(target * unit, unit)
    assert gmem.ranges() == [(0, nr_units * unit, "shared")]
    assert unit_layout(gmem, unit, nr_units) == [split] * nr_units
    for u in range(nr_units):
        host_rmw(m, u * unit, unit, "D", "E")
        guest_rmw(gmem, u * unit, unit, "E", "F")
    teardown(host, gmem, m)


def test_conversions_should_fail_if_memory_has_elevated_refcount(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2)
    test_conversions_should_fail_if_memory_has_elevated_refcount.

    The gup_test PIN_LONGTERM of a whole unit is `m.pin(unit start, unit)`. Besides the
    selftest's single-unit conversion, a bulk conversion of all four units must fail at the
    same offset (first folio with an unsafe refcount), and a failed conversion changes
    nothing in the file's own state (snapshot).
    """
    nr_units = 4
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    for pinned in range(nr_units):
        gmem = new_gmem(host, page_size, nr_units, init_private=False)
        m = gmem.mmap()
        for u in range(nr_units):
            host_rmw(m, u * unit, unit, None, "A")
            guest_rmw(gmem, u * unit, unit, "A", "B")

        pin = m.pin(pinned * unit, unit)
        assert extra_refs(gmem) == {pinned * unit + p * PAGE_SIZE: 1 for p in range(unit // PAGE_SIZE)}
        before = gmem.snapshot()

        with pytest.raises(ConversionError) as single:
            gmem.convert_private(pinned * unit, unit)
        assert single.value.errno == errno.EAGAIN
        assert single.value.error_offset == pinned * unit
        assert gmem.snapshot() == before

        with pytest.raises(ConversionError) as bulk:
            gmem.convert_private(0, nr_units * unit)
        assert bulk.value.errno == errno.EAGAIN
        assert bulk.value.error_offset == pinned * unit
        assert gmem.snapshot() == before
        assert gmem.ranges() == [(0, nr_units * unit, "shared")]
        # EAGAIN is not fatal: the pages stay shared and the host may fault them again.
        host_rmw(m, pinned * unit, unit, "B", None)

        pin.unpin()
        assert extra_refs(gmem) == {}
        gmem.convert_private(pinned * unit, unit)
        assert gmem.shareability(pinned * unit) == "private"
        assert_host_sigbus(m, pinned * unit, unit)
        for u in range(nr_units):
            if u != pinned:
                host_rmw(m, u * unit, unit, "B", "C")
        gmem.convert_shared(pinned * unit, unit)
        assert gmem.ranges() == [(0, nr_units * unit, "shared")]
        for u in range(nr_units):
            host_rmw(m, u * unit, unit, "B" if u == pinned else "C", "D")
            guest_rmw(gmem, u * unit, unit, "D", None)
        m.munmap()
        gmem.close()
        host.flush_work()
    teardown_pools_only(host)


@pytest.mark.parametrize("page_size", ["2M", "1G"])
def test_elevated_refcount_on_one_subpage(page_size: str, revision: str) -> None:
    """Extends test_conversions_should_fail_if_memory_has_elevated_refcount (RFC v2).

    Only one 4K page in the middle of a split huge unit is pinned: `error_offset` is that
    4K folio's offset (kvm_gmem_has_safe_refcount reports the first unsafe folio's index;
    v8's max(start, folio index) gives the same here), not the unit start.
    """
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 2, init_private=False)
    m = gmem.mmap()
    host_rmw(m, unit, unit, None, "A")
    pinned_page = unit + unit // 2
    with m.pin(pinned_page, PAGE_SIZE):
        assert extra_refs(gmem) == {pinned_page: 1}
        for start, size in ((unit, unit), (0, 2 * unit), (unit + PAGE_SIZE, unit - PAGE_SIZE)):
            with pytest.raises(ConversionError) as e:
                gmem.convert_private(start, size)
            assert (e.value.errno, e.value.error_offset) == (errno.EAGAIN, pinned_page), (start, size)
        # A range that avoids the pinned page converts.
        gmem.convert_private(unit, unit // 2)
        assert gmem.ranges() == [
            (0, unit, "shared"),
            (unit, unit + unit // 2, "private"),
            (unit + unit // 2, 2 * unit, "shared"),
        ]
    assert extra_refs(gmem) == {}
    gmem.convert_private(unit + unit // 2, unit // 2)
    assert gmem.ranges() == [(0, unit, "shared"), (unit, 2 * unit, "private")]
    assert unit_layout(gmem, unit, 2) == ["-", "F"]
    guest_rmw(gmem, unit, unit, "A", None)
    teardown(host, gmem, m)


def test_truncate_should_not_change_mappability(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2) test_truncate_should_not_change_mappability."""
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 1, init_private=False)
    m = gmem.mmap()

    host_rmw(m, 0, unit, None, "A")
    gmem.punch_hole(0, unit)
    assert unit_layout(gmem, unit, 1) == ["-"]
    assert gmem.ranges() == [(0, unit, "shared")]
    host_rmw(m, 0, unit, "\0", "A")  # the host can fault again; punching zeroed the unit

    gmem.convert_private(0, unit)
    assert_host_sigbus(m, 0, unit)
    guest_rmw(gmem, 0, unit, "A", None)

    gmem.punch_hole(0, unit)
    assert unit_layout(gmem, unit, 1) == ["-"]
    assert gmem.ranges() == [(0, unit, "private")]
    assert_host_sigbus(m, 0, unit)
    guest_rmw(gmem, 0, unit, "\0", "B")
    guest_rmw(gmem, 0, unit, "B", None)
    teardown(host, gmem, m)


def test_fault_type_independent_of_mem_attributes(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2) test_fault_type_independent_of_mem_attributes.

    The model has no VM-level KVM_SET_MEMORY_ATTRIBUTES (API.md), so only the guest_memfd
    half is ported: guest_memfd shareability alone decides who may fault.
    """
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 1, init_private=True)
    m = gmem.mmap()
    assert_host_sigbus(m, 0, unit)
    guest_rmw(gmem, 0, unit, "\0", "A")

    gmem.convert_shared(0, unit)
    host_rmw(m, 0, unit, "A", "B")
    guest_rmw(gmem, 0, unit, "B", "C")
    host_rmw(m, 0, unit, "C", None)
    teardown(host, gmem, m)


def test_truncate_shared_while_pinned(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2, 44/51) test_truncate_shared_while_pinned.

    4K: punching a pinned shared page succeeds (plain truncate). 2M/1G: the whole huge
    page must be merged before it is truncated, and the merge needs a safe refcount:
    EAGAIN, nothing changed; after unpinning, the punch succeeds.
    """
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 1, init_private=False)
    m = gmem.mmap()
    gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, unit)
    assert unit_layout(gmem, unit, 1) == [split_or_whole(page_size)]

    pin = m.pin(0, unit)
    if page_size == "4K":
        gmem.punch_hole(0, unit)
        assert unit_layout(gmem, unit, 1) == ["-"]
        host.check()
    else:
        assert host.hugetlb_stats(page_size)["free"] == {"2M": 64, "1G": 20}[page_size] - 1
        before = gmem.snapshot()
        with pytest.raises(OSError) as e:
            gmem.punch_hole(0, unit)
        assert e.value.errno == errno.EAGAIN
        assert gmem.snapshot() == before
        assert unit_layout(gmem, unit, 1) == ["S"]
    pin.unpin()
    gmem.punch_hole(0, unit)
    assert unit_layout(gmem, unit, 1) == ["-"]
    assert gmem.ranges() == [(0, unit, "shared")]
    if page_size != "4K":
        # Merged, then truncated as one huge folio: back in the pool at once.
        stats = host.hugetlb_stats(page_size)
        pool = {"2M": 64, "1G": 20}[page_size]
        assert (stats["free"], stats["resv"]) == (pool, 1), stats
    teardown(host, gmem, m)


@pytest.mark.parametrize("page_size", ["2M", "1G"])
@pytest.mark.parametrize("revision", ["rfc-v2", "fixed"])
@pytest.mark.parametrize("pinned_unit", [0, 1])
def test_truncate_two_units_one_pinned(page_size: str, revision: str, pinned_unit: int) -> None:
    """Extends test_truncate_shared_while_pinned (RFC v2, 44/51) to a two-unit punch.

    kvm_gmem_truncate_inode_aligned_pages walks the huge pages in order and breaks on the
    first error (KERNEL-NOTES 2.4): a pinned page in unit 1 leaves unit 0 truncated (and
    back in the subpool); a pinned page in unit 0 stops before anything is truncated.
    """
    unit = UNIT_BYTES[page_size]
    pool = {"2M": 64, "1G": 20}[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 2, init_private=False)
    m = gmem.mmap()
    for u in range(2):
        host_rmw(m, u * unit, unit, None, "A")
    with m.pin(pinned_unit * unit + 2 * PAGE_SIZE, PAGE_SIZE):
        with pytest.raises(OSError) as e:
            gmem.punch_hole(0, 2 * unit)
        assert e.value.errno == errno.EAGAIN
        stats = host.hugetlb_stats(page_size)
        if pinned_unit == 1:
            assert unit_layout(gmem, unit, 2) == ["-", "S"]
            assert (stats["free"], stats["resv"]) == (pool - 1, 1), stats
            host_rmw(m, 0, unit, "\0", None)
        else:
            assert unit_layout(gmem, unit, 2) == ["S", "S"]
            assert (stats["free"], stats["resv"]) == (pool - 2, 0), stats
            host_rmw(m, 0, unit, "A", None)
        host_rmw(m, unit, unit, "A", None)
    gmem.punch_hole(0, 2 * unit)
    assert unit_layout(gmem, unit, 2) == ["-", "-"]
    teardown(host, gmem, m)


def test_truncate_private(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2, 44/51) test_truncate_private."""
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 1, init_private=True)
    gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, unit)
    assert unit_layout(gmem, unit, 1) == ["F"]
    assert extra_refs(gmem) == {}
    guest_rmw(gmem, 0, unit, "\0", "A")
    gmem.punch_hole(0, unit)
    assert unit_layout(gmem, unit, 1) == ["-"]
    assert gmem.ranges() == [(0, unit, "private")]
    guest_rmw(gmem, 0, unit, "\0", None)
    teardown(host, gmem)


@pytest.mark.parametrize("init_private", [True, False], ids=["private-unpinned", "shared-pinned"])
def test_close_with_pinning(page_size: str, revision: str, init_private: bool) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2, 44/51) test_close_with_pinning.

    With the hugetlb-reporting wrapper's check: after the fd, the mapping and finally the
    pin are gone and deferred work has run, the huge page is back in the pool. While the
    pin lives, the page stays in use; the freed pieces of a split page come back only
    through the deferred merge (host.flush_work()).
    """
    unit = UNIT_BYTES[page_size]
    pool = {"4K": 0, "2M": 64, "1G": 20}[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 1, init_private=init_private)
    m = gmem.mmap()
    gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, unit)
    pin = None if init_private else m.pin(0, unit)
    if not init_private:
        host_rmw(m, 0, unit, "\0", "A")
    m.munmap()
    gmem.close()
    host.check()
    if pin is not None:
        if page_size != "4K":
            assert host.hugetlb_stats(page_size)["free"] == pool - 1, "pinned page returned early"
        pin.unpin()
        if page_size != "4K":
            free = host.hugetlb_stats(page_size)["free"]
            assert free == pool - 1, "split pieces merged without deferred work"
    host.flush_work()
    teardown_pools_only(host)


@pytest.mark.parametrize("page_size", ["2M", "1G"])
def test_allocate_subfolios(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2, 45/51) test_allocate_subfolios."""
    unit = UNIT_BYTES[page_size]
    nr = unit // PAGE_SIZE
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 1, init_private=False)
    m = gmem.mmap()
    written = list(range(nr - 1, -1, -(nr // 2)))
    assert written == [nr - 1, nr // 2 - 1]

    def value(i: int) -> bytes:
        return bytes([(ord("A") + i) & 0xFF]) * PROBE_LEN

    for i in written:
        m.write(i * PAGE_SIZE, value(i))
    for i in written:
        assert m.read(i * PAGE_SIZE, PROBE_LEN) == value(i)
        assert gmem.guest_read(i * PAGE_SIZE, PROBE_LEN) == value(i)
    for i in (0, nr // 2, nr - 2):
        assert m.read(i * PAGE_SIZE, PROBE_LEN) == bytes(PROBE_LEN)
    assert unit_layout(gmem, unit, 1) == ["S"]
    teardown(host, gmem, m)


@pytest.mark.parametrize("page_size", ["2M", "1G"])
def test_convert_subfolios(page_size: str, revision: str) -> None:
    """Ports guest_memfd_conversions_test.c (RFC v2, 45/51) test_convert_subfolios."""
    unit = UNIT_BYTES[page_size]
    nr = unit // PAGE_SIZE
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 1, init_private=True)
    m = gmem.mmap()
    pages = list(range(0, nr, nr // 2))
    assert pages == [0, nr // 2]
    for p in pages:
        gmem.guest_write(p * PAGE_SIZE, probe("A"))
        assert_sigbus_at(m, p * PAGE_SIZE)
    assert unit_layout(gmem, unit, 1) == ["F"]
    assert gmem.guest_mapping_level(0) == page_size

    target = nr // 2  # round_up(nr / 2, nr / 2)
    t_off = target * PAGE_SIZE
    gmem.convert_shared(t_off, PAGE_SIZE)
    assert gmem.ranges() == [(0, t_off, "private"), (t_off, t_off + PAGE_SIZE, "shared"),
                             (t_off + PAGE_SIZE, unit, "private")]
    assert unit_layout(gmem, unit, 1) == ["S"]
    # Invariant 3: no huge guest mapping over a range that holds a shared page; zapping
    # page `target` took down the whole huge mapping that covered page 0.
    assert gmem.guest_mapping_level(0) is None
    assert m.read(t_off, PROBE_LEN) == probe("A")
    m.write(t_off, probe("B"))
    assert_sigbus_at(m, 0)
    assert_sigbus_at(m, t_off + PAGE_SIZE)
    assert_sigbus_at(m, t_off - PAGE_SIZE)
    for p in pages:
        gmem.guest_write(p * PAGE_SIZE, probe("B"))
    assert gmem.guest_mapping_level(0) == "4K"

    gmem.convert_private(t_off, PAGE_SIZE)
    assert gmem.ranges() == [(0, unit, "private")]
    assert unit_layout(gmem, unit, 1) == ["F"]
    assert extra_refs(gmem) == {}
    for p in pages:
        assert gmem.guest_read(p * PAGE_SIZE, PROBE_LEN) == probe("B")
        assert_sigbus_at(m, p * PAGE_SIZE)
    teardown(host, gmem, m)


# --- ioctl argument checks (04/51 kvm_gmem_ioctl_convert_range, no selftest of their own) ---


def test_convert_argument_checks(page_size: str, revision: str) -> None:
    """Ports the argument checks of kvm_gmem_ioctl_convert_range (04/51), KERNEL-NOTES 1.2.

    Beyond the file, overflowing, or not 4K aligned: EINVAL, nothing changed. No huge-page
    alignment is required of a conversion range.
    """
    unit = UNIT_BYTES[page_size]
    size = 2 * unit
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 2, init_private=False)
    m = gmem.mmap()
    host_rmw(m, 0, unit, None, "A")
    before = gmem.snapshot()
    bad = [
        (size, PAGE_SIZE),                 # starts at the end of the file
        (size - PAGE_SIZE, 2 * PAGE_SIZE),  # runs past the end
        (size + unit, PAGE_SIZE),          # starts beyond the end
        (2**64 - PAGE_SIZE, 2 * PAGE_SIZE),  # offset + size overflows u64
        (1, PAGE_SIZE),                    # misaligned offset
        (0, PAGE_SIZE + 1),                # misaligned size
        (PAGE_SIZE // 2, PAGE_SIZE // 2),  # both misaligned
    ]
    for convert in (gmem.convert_private, gmem.convert_shared):
        for offset, length in bad:
            with pytest.raises(OSError) as e:
                convert(offset, length)
            assert e.value.errno == errno.EINVAL, (convert.__name__, offset, length, e.value)
            assert gmem.snapshot() == before
    # Any 4K-aligned range inside the file is fine, huge-page aligned or not.
    gmem.convert_private(PAGE_SIZE, PAGE_SIZE)
    assert gmem.ranges() == expected_ranges(
        [(0, PAGE_SIZE, "shared"), (PAGE_SIZE, 2 * PAGE_SIZE, "private"), (2 * PAGE_SIZE, size, "shared")]
    )
    teardown(host, gmem, m)


@pytest.mark.parametrize("revision", ["rfc-v2", "fixed"])
def test_convert_zero_size_is_a_noop(page_size: str, revision: str) -> None:
    """Ports kvm_gmem_ioctl_convert_range (04/51): `size == 0` returns 0 before any range check."""
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 1, init_private=False)
    before = gmem.snapshot()
    for offset in (0, unit, 5 * unit, 1):
        gmem.convert_private(offset, 0)
        gmem.convert_shared(offset, 0)
    assert gmem.snapshot() == before
    assert gmem.ranges() == [(0, unit, "shared")]
    teardown(host, gmem)


def test_convert_to_current_state_is_a_noop(page_size: str, revision: str) -> None:
    """Ports kvm_gmem_convert_range (KERNEL-NOTES 1.3): an empty work list is success, nothing else.

    Converting a pinned shared unit to shared needs no refcount check, and converting
    already-private memory to private touches nothing.
    """
    unit = UNIT_BYTES[page_size]
    host = new_host(revision)
    gmem = new_gmem(host, page_size, 2, init_private=False)
    m = gmem.mmap()
    host_rmw(m, 0, unit, None, "A")
    gmem.convert_private(unit, unit)
    with m.pin(0, unit):
        before = gmem.snapshot()
        gmem.convert_shared(0, unit)
        gmem.convert_private(unit, unit)
        assert gmem.snapshot() == before
        host_rmw(m, 0, unit, "A", None)
    assert gmem.ranges() == [(0, unit, "shared"), (unit, 2 * unit, "private")]
    teardown(host, gmem, m)
