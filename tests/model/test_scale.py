"""A 1 TiB guest backed by 1G pages: the model must store state as ranges and folios, not
per 4K page (1 TiB is 268,435,456 pages; a per-page model would take minutes and gigabytes).

No timed assertion (figures belong in benchmarks/); a SIGALRM guard turns a runaway model
into a test failure instead of a hang.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from itertools import islice
from types import FrameType

import pytest
from gmem_testlib import (
    FALLOC_FL_KEEP_SIZE,
    PAGE_SIZE,
    Gmem,
    assert_clean,
    assert_sigbus_at,
    expected_ranges,
    gmem_flags,
)

from pytest_gmem import Host

GiB = 1 << 30
TiB = 1 << 40
NR_1G = TiB // GiB
PAGES_PER_1G = GiB // PAGE_SIZE
GUARD_SECONDS = 60


@pytest.fixture
def hang_guard() -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"1 TiB scenario still running after {GUARD_SECONDS}s: per-4K-page model?")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(GUARD_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def huge(i: int) -> tuple[int, int, int]:
    """The folio tuple of an unsplit, unpinned 1G folio at huge index i."""
    return (i * GiB, PAGES_PER_1G, PAGES_PER_1G)


def split_folios(i: int) -> Iterator[tuple[int, int, int]]:
    """The folio tuples of huge index i split into 4K folios, no pins."""
    base = i * GiB
    return ((base + p * PAGE_SIZE, 1, 1) for p in range(PAGES_PER_1G))


def test_one_tib_guest_with_1g_pages(hang_guard: None) -> None:
    """Scale check: fallocate 1 TiB, scattered 4K conversions, ranges coalesced, the folio
    layout around split pages, invariants, and the pool balanced at the end."""
    host = Host(hugetlb={"1G": NR_1G})
    vm = host.create_vm(vm_type="sw_protected")
    gmem: Gmem = vm.create_guest_memfd(size=TiB, flags=gmem_flags("1G", init_private=True))
    assert host.hugetlb_stats("1G")["resv"] == NR_1G
    assert gmem.ranges() == [(0, TiB, "private")]

    gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, TiB)
    s = host.hugetlb_stats("1G")
    assert (s["free"], s["resv"], s["total"]) == (0, 0, NR_1G)
    assert list(gmem.folios()) == [huge(i) for i in range(NR_1G)]
    host.check()

    # Scattered 4K pages, all inside 1G pages 7 and 8 (the last page of 7 and the first
    # of 8 are adjacent across the huge-page boundary), plus pages far apart in the file
    # that are converted and converted back, so they end up unsplit again.
    p7 = 7 * GiB
    scattered = [p7 + 3 * PAGE_SIZE, p7 + 4 * PAGE_SIZE, p7 + 5 * PAGE_SIZE, p7 + 100 * PAGE_SIZE,
                 8 * GiB - PAGE_SIZE, 8 * GiB]
    for off in scattered:
        gmem.convert_shared(off, PAGE_SIZE)
    far = [0, 513 * GiB + 12345 * PAGE_SIZE, TiB - PAGE_SIZE]
    for off in far:
        gmem.convert_shared(off, PAGE_SIZE)
    for off in far:
        gmem.convert_private(off, PAGE_SIZE)

    assert gmem.ranges() == [
        (0, p7 + 3 * PAGE_SIZE, "private"),
        (p7 + 3 * PAGE_SIZE, p7 + 6 * PAGE_SIZE, "shared"),  # three adjacent pages coalesced
        (p7 + 6 * PAGE_SIZE, p7 + 100 * PAGE_SIZE, "private"),
        (p7 + 100 * PAGE_SIZE, p7 + 101 * PAGE_SIZE, "shared"),
        (p7 + 101 * PAGE_SIZE, 8 * GiB - PAGE_SIZE, "private"),
        (8 * GiB - PAGE_SIZE, 8 * GiB + PAGE_SIZE, "shared"),  # coalesced across the boundary
        (8 * GiB + PAGE_SIZE, TiB, "private"),
    ]
    assert gmem.shareability(p7 + 4 * PAGE_SIZE) == "shared"
    assert gmem.shareability(p7 + 6 * PAGE_SIZE) == "private"

    # The folio layout: huge folios, then 1G pages 7 and 8 split into 4K folios, then huge.
    folios = iter(gmem.folios())
    assert list(islice(folios, 7)) == [huge(i) for i in range(7)]
    for expected in (split_folios(7), split_folios(8)):
        got = list(islice(folios, PAGES_PER_1G))
        assert got == list(expected)
    assert list(folios) == [huge(i) for i in range(9, NR_1G)]

    # Host and guest views of the mixed region.
    m = gmem.mmap()
    m.write(p7 + 4 * PAGE_SIZE, b"shared!")
    assert gmem.guest_read(p7 + 4 * PAGE_SIZE, 7) == b"shared!"
    assert_sigbus_at(m, p7 + 6 * PAGE_SIZE)
    assert_sigbus_at(m, 9 * GiB)
    gmem.guest_write(9 * GiB, b"private")
    assert gmem.guest_mapping_level(9 * GiB) == "1G"
    gmem.guest_write(p7 + 6 * PAGE_SIZE, b"private")
    assert gmem.guest_mapping_level(p7 + 6 * PAGE_SIZE) == "4K"
    host.check()

    # Back to private everywhere: everything merges into 1G folios again.
    gmem.convert_private(0, TiB)
    assert gmem.ranges() == [(0, TiB, "private")]
    assert list(gmem.folios()) == [huge(i) for i in range(NR_1G)]
    assert gmem.guest_read(p7 + 4 * PAGE_SIZE, 7) == b"shared!"
    assert gmem.guest_read(9 * GiB, 7) == b"private"
    assert_sigbus_at(m, p7 + 4 * PAGE_SIZE)
    host.check()

    m.munmap()
    gmem.close()
    host.flush_work()
    s = host.hugetlb_stats("1G")
    assert (s["free"], s["resv"], s["total"]) == (NR_1G, 0, NR_1G)
    assert_clean(host)


def test_coalescing_of_many_scattered_pages(hang_guard: None) -> None:
    """kvm_gmem_shareability_store keeps adjacent equal ranges merged (1.1): converting every
    other page of a run shared and then the gaps yields a single range."""
    host = Host(hugetlb={"1G": 4})
    vm = host.create_vm(vm_type="sw_protected")
    size = 4 * GiB
    gmem: Gmem = vm.create_guest_memfd(size=size, flags=gmem_flags("1G", init_private=True))
    base = GiB + 16 * PAGE_SIZE
    for k in range(0, 64, 2):
        gmem.convert_shared(base + k * PAGE_SIZE, PAGE_SIZE)
    spans = [(0, base, "private")]
    for k in range(64):
        state = "shared" if k % 2 == 0 else "private"
        spans.append((base + k * PAGE_SIZE, base + (k + 1) * PAGE_SIZE, state))
    spans.append((base + 64 * PAGE_SIZE, size, "private"))
    assert gmem.ranges() == expected_ranges(spans)
    assert len(gmem.ranges()) == 65
    for k in range(1, 64, 2):
        gmem.convert_shared(base + k * PAGE_SIZE, PAGE_SIZE)
    assert gmem.ranges() == [
        (0, base, "private"),
        (base, base + 64 * PAGE_SIZE, "shared"),
        (base + 64 * PAGE_SIZE, size, "private"),
    ]
    gmem.convert_private(base, 64 * PAGE_SIZE)
    assert gmem.ranges() == [(0, size, "private")]
    assert list(gmem.folios()) == []  # conversions never allocate
    host.check()
    gmem.close()
    host.flush_work()
    assert_clean(host)


def test_bulk_conversion_of_an_unallocated_tib(hang_guard: None) -> None:
    """One ioctl over 512 GiB of a 1 TiB file that holds a single allocated page: the work
    is per range and per allocated folio, not per 4K page."""
    host = Host(hugetlb={"1G": NR_1G})
    vm = host.create_vm(vm_type="sw_protected")
    gmem: Gmem = vm.create_guest_memfd(size=TiB, flags=gmem_flags("1G", init_private=True))
    gmem.guest_write(300 * GiB + 5 * PAGE_SIZE, b"kept")
    assert list(gmem.folios()) == [huge(300)]

    gmem.convert_shared(256 * GiB, 512 * GiB)
    assert gmem.ranges() == [(0, 256 * GiB, "private"), (256 * GiB, 768 * GiB, "shared"),
                             (768 * GiB, TiB, "private")]
    folios = list(gmem.folios())
    assert len(folios) == PAGES_PER_1G and folios[0] == (300 * GiB, 1, 1)
    m = gmem.mmap()
    assert m.read(300 * GiB + 5 * PAGE_SIZE, 4) == b"kept"
    m.write(700 * GiB, b"host")
    assert_sigbus_at(m, 800 * GiB)
    s = host.hugetlb_stats("1G")
    assert (s["free"], s["resv"]) == (NR_1G - 2, NR_1G - 2)

    gmem.convert_private(256 * GiB, 512 * GiB)
    assert gmem.ranges() == [(0, TiB, "private")]
    assert list(gmem.folios()) == [huge(300), huge(700)]
    assert gmem.guest_read(700 * GiB, 4) == b"host"
    host.check()
    m.munmap()
    gmem.close()
    host.flush_work()
    s = host.hugetlb_stats("1G")
    assert (s["free"], s["resv"], s["total"]) == (NR_1G, 0, NR_1G)
    assert_clean(host)
