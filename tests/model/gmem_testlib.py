"""Shared helpers for the model tests that port the KVM guest_memfd selftests.

Written only against the public names of API.md section 1, so the tests double as an
independent check of the model. Nothing here imports pytest_gmem internals.

Vocabulary follows the selftests: a "unit" is the test page size (4K, 2M or 1G); a
"probe" is a small byte pattern written at a few offsets of a unit (its first bytes, the
middle 4K page and its last bytes), so huge units are checked in three different 4K pages
without copying gigabytes around.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import pytest

from pytest_gmem import Host, SigBus, uapi

PAGE_SIZE = 4096
PROBE_LEN = 16

UNIT_BYTES: dict[str, int] = {"4K": 4 << 10, "2M": 2 << 20, "1G": 1 << 30}
PAGE_SIZES: tuple[str, ...] = ("4K", "2M", "1G")
HUGE_PAGE_SIZES: tuple[str, ...] = ("2M", "1G")
#: the revisions speaking the RFC v2 uAPI (flags SUPPORT_SHARED / INIT_PRIVATE)
REVISIONS: tuple[str, ...] = ("rfc-v2", "fixed", "prealloc")

#: HugeTLB pools big enough for every ported selftest (16 units of 1G at most).
DEFAULT_POOLS: dict[str, int] = {"2M": 64, "1G": 20}

#: fallocate(2) mode bits (include/uapi/linux/falloc.h).
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10


class Mapping(Protocol):
    """What a test uses of `gmem.mmap()` (API.md: a host mapping, one per process)."""

    def read(self, offset: int, length: int) -> bytes: ...
    def write(self, offset: int, data: bytes) -> None: ...
    def pin(self, offset: int, length: int) -> Any: ...
    def munmap(self) -> None: ...


class Gmem(Protocol):
    """What a test uses of a `GuestMemfd` (API.md section 1)."""

    def convert_shared(self, offset: int, size: int) -> None: ...
    def convert_private(self, offset: int, size: int) -> None: ...
    def fallocate(self, mode: int, offset: int, length: int) -> None: ...
    def punch_hole(self, offset: int, length: int) -> None: ...
    def mmap(self) -> Mapping: ...
    def guest_read(self, offset: int, length: int) -> bytes: ...
    def guest_write(self, offset: int, data: bytes) -> None: ...
    def guest_mapping_level(self, offset: int) -> str | None: ...
    def shareability(self, offset: int) -> str: ...
    def ranges(self) -> list[tuple[int, int, str]]: ...
    def folios(self) -> Iterable[tuple[int, int, int]]: ...
    def snapshot(self) -> Any: ...
    def close(self) -> None: ...


# --- construction --------------------------------------------------------------------


def hugetlb_flags(page_size: str) -> int:
    """The HUGETLB creation flags for a page size; 0 for 4K (no HugeTLB, 7.1)."""
    if page_size == "4K":
        return 0
    size_flag = {"2M": uapi.GUESTMEM_HUGETLB_FLAG_2MB, "1G": uapi.GUESTMEM_HUGETLB_FLAG_1GB}[page_size]
    return int(uapi.GUEST_MEMFD_FLAG_HUGETLB | size_flag)


def gmem_flags(page_size: str, *, init_private: bool, support_shared: bool = True) -> int:
    """`kvm_create_guest_memfd.flags` for the v2 uAPI (KERNEL-NOTES 7.1)."""
    flags = hugetlb_flags(page_size)
    if support_shared:
        flags |= uapi.GUEST_MEMFD_FLAG_SUPPORT_SHARED
    if init_private:
        flags |= uapi.GUEST_MEMFD_FLAG_INIT_PRIVATE
    return int(flags)


def upstream_flags(page_size: str, *, init_shared: bool, mmap: bool = True) -> int:
    """`kvm_create_guest_memfd.flags` for linux-next's uAPI (KERNEL-NOTES 7.2): MMAP, INIT_SHARED
    (private otherwise), and for a huge page size the work branch's HugeTLB bits."""
    flags = 0
    if page_size != "4K":
        size_flag = {"2M": uapi.GUESTMEM_HUGETLB_FLAG_2MB, "1G": uapi.GUESTMEM_HUGETLB_FLAG_1GB}[page_size]
        flags |= uapi.upstream.GUEST_MEMFD_FLAG_HUGETLB_WIP | size_flag
    if mmap:
        flags |= uapi.GUEST_MEMFD_FLAG_MMAP
    if init_shared:
        flags |= uapi.GUEST_MEMFD_FLAG_INIT_SHARED
    return int(flags)


def new_host(revision: str = "fixed", pools: dict[str, int] | None = None) -> Host:
    """A host with the pools every port needs; under ``upstream`` with the work branch's
    HugeTLB (the ports' 2M and 1G cases)."""
    return Host(hugetlb=dict(DEFAULT_POOLS if pools is None else pools), revision=revision,
                wip_hugetlb=revision == "upstream")


def new_gmem(host: Host, page_size: str, nr_units: int, *, init_private: bool) -> Gmem:
    """A sw_protected VM and a guest_memfd of `nr_units` units, built with the flag form."""
    vm = host.create_vm(vm_type="sw_protected")
    gmem: Gmem = vm.create_guest_memfd(
        size=nr_units * UNIT_BYTES[page_size], flags=gmem_flags(page_size, init_private=init_private)
    )
    return gmem


# --- access checks --------------------------------------------------------------------


def probe(ch: str) -> bytes:
    """A probe pattern: `ch` repeated PROBE_LEN times."""
    return ch.encode() * PROBE_LEN


def probe_offsets(unit: int) -> tuple[int, ...]:
    """Byte offsets inside a unit where probes go: start, middle page, last bytes."""
    return (0, unit // 2 + 8, unit - PROBE_LEN)


def host_rmw(m: Mapping, base: int, unit: int, expect: str | None, write: str | None) -> None:
    """Selftest `host_do_rmw`: read the probes of a unit and check them, then write."""
    for off in probe_offsets(unit):
        if expect is not None:
            got = m.read(base + off, PROBE_LEN)
            assert got == probe(expect), f"host read at {base + off:#x}: {got!r} != {probe(expect)!r}"
        if write is not None:
            m.write(base + off, probe(write))


def guest_rmw(gmem: Gmem, base: int, unit: int, expect: str | None, write: str | None) -> None:
    """Selftest `guest_do_rmw`: the guest checks the probes of a unit, then writes."""
    for off in probe_offsets(unit):
        if expect is not None:
            got = gmem.guest_read(base + off, PROBE_LEN)
            assert got == probe(expect), f"guest read at {base + off:#x}: {got!r} != {probe(expect)!r}"
        if write is not None:
            gmem.guest_write(base + off, probe(write))


def assert_sigbus_at(m: Mapping, offset: int, length: int = PROBE_LEN) -> None:
    """Both a host read and a host write at `offset` raise SigBus, reported in that 4K page."""
    with pytest.raises(SigBus) as rd:
        m.read(offset, length)
    assert rd.value.offset // PAGE_SIZE == offset // PAGE_SIZE, (rd.value.offset, offset)
    with pytest.raises(SigBus) as wr:
        m.write(offset, b"Z" * length)
    assert wr.value.offset // PAGE_SIZE == offset // PAGE_SIZE, (wr.value.offset, offset)


def assert_host_sigbus(m: Mapping, base: int, unit: int) -> None:
    """Selftest `host_do_rmw` in a child expecting SIGBUS, at every probe of the unit."""
    for off in probe_offsets(unit):
        assert_sigbus_at(m, base + off)


def assert_clean(host: Host) -> None:
    """End-of-test check: invariants hold and the kernel log has no WARN."""
    host.check()
    assert list(host.warnings) == []


# --- filemap layout --------------------------------------------------------------------


def unit_layout(gmem: Gmem, unit: int, nr_units: int) -> list[str]:
    """Summarise `gmem.folios()` per unit.

    "F": one folio covers the unit exactly; "S": the unit is fully populated by 4K folios
    (a split huge page; only for units larger than 4K); "-": nothing allocated;
    "P<n>": n 4K folios, not all. Any other shape (a folio straddling units, a folio of an
    unexpected order) fails the assertion right here.
    """
    pages_per_unit = unit // PAGE_SIZE
    small: list[int] = [0] * nr_units
    whole: list[bool] = [False] * nr_units
    last_end = -1
    for offset, nr_pages, _ref in gmem.folios():
        assert offset >= last_end, f"folios out of order or overlapping at {offset:#x}"
        last_end = offset + nr_pages * PAGE_SIZE
        idx = offset // unit
        assert idx < nr_units, f"folio at {offset:#x} beyond the file"
        if nr_pages == pages_per_unit:
            assert offset % unit == 0, f"misaligned huge folio at {offset:#x}"
            whole[idx] = True
        else:
            assert nr_pages == 1, f"folio of unexpected size {nr_pages} at {offset:#x}"
            small[idx] += 1
    out: list[str] = []
    for i in range(nr_units):
        if whole[i]:
            assert small[i] == 0
            out.append("F")
        elif small[i] == 0:
            out.append("-")
        elif small[i] == pages_per_unit:
            out.append("S")
        else:
            out.append(f"P{small[i]}")
    return out


def extra_refs(gmem: Gmem) -> dict[int, int]:
    """Folios whose refcount is not exactly the filemap's `nr_pages`: offset -> extra refs."""
    return {off: ref - nr for off, nr, ref in gmem.folios() if ref != nr}


def expected_ranges(spans: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Coalesce adjacent equal spans, the way `kvm_gmem_shareability_store` keeps the tree."""
    out: list[tuple[int, int, str]] = []
    for start, end, state in spans:
        if start == end:
            continue
        if out and out[-1][1] == start and out[-1][2] == state:
            out[-1] = (out[-1][0], end, state)
        else:
            out.append((start, end, state))
    return out
