"""Host mappings of a guest_memfd and long-term pins (mirrors ``kvm_gmem_mmap``,
``kvm_gmem_fault_shared`` and, for pins, ``pin_user_pages(FOLL_LONGTERM)`` / IOMMU mappings).

Each ``HostMapping`` is one process's mapping of the whole file; PTEs exist only for SHARED
pages, always at 4K. A ``Pin`` holds one reference per folio it touches until ``unpin()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import truncate
from .errors import SigBus
from .folio import Block
from .host import user_op
from .intervals import IntervalMap
from .shareability import SHARED
from .units import PAGE_SHIFT, PAGE_SIZE, as_data, as_offset

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd


class HostMapping:
    """``mmap(MAP_SHARED)`` of the whole file in one process; a context manager."""

    def __init__(self, g: GuestMemfd) -> None:
        self.gmem = g
        self.ptes: IntervalMap[bool] = IntervalMap()
        self.live = True

    def __enter__(self) -> HostMapping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.munmap()

    def _fault(self, offset: int, length: int, what: str) -> int:
        """``kvm_gmem_fault_shared`` for each page of the access, in order. Returns the number
        of bytes that can be accessed before the first SIGBUS (raised by the caller after)."""
        if not self.live:
            raise ValueError("access through a mapping after munmap()")
        as_offset(offset, f"{what} offset")
        as_offset(length, f"{what} length")
        if offset < 0 or length < 0:
            raise ValueError(f"{what}: negative offset/length {offset}/{length}")
        g = self.gmem
        if length == 0:
            return 0
        g.host.begin_op(f"host {what}({offset:#x}, {length:#x})")
        first = offset >> PAGE_SHIFT
        last = (offset + length + PAGE_SIZE - 1) >> PAGE_SHIFT
        if not g.alive:
            raise SigBus(offset, "the file is gone")
        for s, e, v in g.share.ranges(first, min(last, g.nr_pages)):
            if v != SHARED:
                return max(s << PAGE_SHIFT, offset) - offset
            truncate.get_folios(g, s, e)
            self.ptes.assign(s, e, True)
        if last > g.nr_pages:
            if g.host.revision.fault_past_eof_warns:
                # kvm_gmem_mmap does not limit the VMA to the file: past EOF the maple tree has
                # no entry, kvm_gmem_shareability_get WARNs, NULL is not SHAREABILITY_ALL: SIGBUS
                g.host.warn("kvm_gmem_shareability_get", "WARN(!entry): Shareability should always be "
                            f"defined for all indices in inode (host fault at index {max(first, g.nr_pages):#x}, "
                            "past the end of the file)")
            return max(g.nr_pages << PAGE_SHIFT, offset) - offset
        return length

    def _sigbus(self, at: int) -> SigBus:
        g = self.gmem
        idx = at >> PAGE_SHIFT
        if idx >= g.nr_pages:
            return SigBus(at, f"offset is at or beyond the file size {g.size:#x}")
        return SigBus(at, f"page {idx:#x} is {g.share.get(idx)} (only shared pages can be faulted)")

    @user_op
    def read(self, offset: int, length: int) -> bytes:
        """Read through the mapping: ``kvm_gmem_fault_shared`` per page; SigBus at the first page
        that cannot be faulted, OSError ENOMEM when a folio cannot be allocated (VM_FAULT_OOM)."""
        ok = self._fault(offset, length, "read")
        if ok < length:
            raise self._sigbus(offset + ok)
        return self.gmem.contents.read(offset, length)

    @user_op
    def write(self, offset: int, data: bytes) -> None:
        """Write through the mapping (``kvm_gmem_fault_shared``, failures as :meth:`read`); bytes
        before a SIGBUS page are written, as in memset."""
        data = as_data(data, "write data")
        ok = self._fault(offset, len(data), "write")
        if ok:
            self.gmem.contents.write(offset, data[:ok])
        if ok < len(data):
            raise self._sigbus(offset + ok)

    @user_op
    def fill(self, offset: int, length: int, byte: int) -> None:
        """memset through the mapping, cheap for large ranges (``kvm_gmem_fault_shared``,
        failures as :meth:`read`)."""
        ok = self._fault(offset, length, "write")
        if ok:
            self.gmem.contents.fill(offset, ok, byte)
        if ok < length:
            raise self._sigbus(offset + ok)

    def is_mapped(self, offset: int) -> bool:
        """Whether this process has a PTE for the page at ``offset``."""
        return self.ptes.find(offset >> PAGE_SHIFT) is not None

    @user_op
    def pin(self, offset: int, length: int | str) -> Pin:
        """A long-term pin (GUP ``FOLL_LONGTERM`` or an IOMMU mapping) of ``[offset, +length)``:
        faults the pages in (SigBus if not shared), then one reference per folio touched."""
        from .units import parse_size

        length = parse_size(length, "length")
        ok = self._fault(offset, length, "pin")
        if ok < length:
            raise self._sigbus(offset + ok)
        return Pin(self.gmem, offset >> PAGE_SHIFT, (offset + length + PAGE_SIZE - 1) >> PAGE_SHIFT)

    def munmap(self) -> None:
        """``munmap(2)``: drops the mapping's reference on the file, which is released once no
        other mapping and no fd holds it (pins do not)."""
        if not self.live:
            return
        self.live = False
        self.ptes = IntervalMap()
        g = self.gmem
        if self in g.mappings:
            g.mappings.remove(self)
        g.maybe_release()

    def __repr__(self) -> str:
        return f"HostMapping({self.gmem!r}, {len(self.ptes)} PTE ranges{'' if self.live else ', unmapped'})"


class Pin:
    """References held on folios by a long-term pin; a context manager."""

    def __init__(self, g: GuestMemfd, start: int, end: int) -> None:
        self.gmem = g
        self.start = start
        self.end = end
        self.held: list[tuple[Block, int, int]] = []
        for run in g.filemap.runs(start, end):
            s, e = max(run.start, start), min(run.end, end)
            if run.folio_nr > 1:
                s, e = run.start, run.start + 1  # one reference on the head of a huge folio
            run.block.pins.append((s, e, self))
            self.held.append((run.block, s, e))
        g.pins.append(self)
        self.live = True

    def __enter__(self) -> Pin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unpin()

    def unpin(self) -> None:
        """Drop the references; pages no longer in the filemap and not pinned elsewhere are freed."""
        if not self.live:
            return
        self.live = False
        g = self.gmem
        for block, s, e in self.held:
            block.pins = [p for p in block.pins if p[2] is not self]
            owner = block.owner
            resident = owner.filemap.resident(block, s, e) if getattr(owner, "alive", False) else []  # type: ignore[attr-defined]
            gone = _subtract([(s, e)], resident)
            gone = _subtract(gone, block.pinned(s, e))
            free = sum(b - a for a, b in gone)
            if free:
                owner.alloc.free_pages(block, free)  # type: ignore[attr-defined]
        if self in g.pins:
            g.pins.remove(self)
        g.maybe_release()

    def __repr__(self) -> str:
        return f"Pin([{self.start << PAGE_SHIFT:#x}, {self.end << PAGE_SHIFT:#x}){'' if self.live else ', released'})"


def _subtract(spans: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = spans
    for hs, he in holes:
        nxt = []
        for s, e in out:
            if he <= s or hs >= e:
                nxt.append((s, e))
                continue
            if s < hs:
                nxt.append((s, hs))
            if he < e:
                nxt.append((he, e))
        out = nxt
    return out
