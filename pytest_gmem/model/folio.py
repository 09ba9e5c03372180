"""Physical memory (``Block``: what one allocation returned) and the references held on it.

Folios keep their file index for life (split and merge happen in place), so a 4K folio is
identified by ``(block, index)`` and a run of 4K folios of one block is one filemap interval.
References beyond the filemap's own: pins (GUP / IOMMU, one per folio touched) and transient
references injected by faults (speculative ones dropped after ``hold`` spins).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hugetlb import Subpool

@dataclass(eq=False)
class Transient:
    """Extra references on the folio starting at ``index`` (speculative or lasting)."""

    index: int
    refs: int
    hold: int | None  # spins left before they drop; None: until the arming ends
    source: str


@dataclass(eq=False)
class Block:
    """Memory from one allocation: a huge page (``huge``) or a run of 4K pages."""

    base: int  # file index of the block's first page (folios never move)
    nr: int  # 4K pages in the block
    huge: bool
    owner: object  # the inode (GuestMemfd) that allocated it
    spool: Subpool | None = None
    split: bool = False  # guestmem_hugetlb stash present: the huge page is split into 4K folios
    hvo: bool = True  # vmemmap optimised (HVO); restoring it needs memory
    freed: int = 0  # pages whose last reference dropped
    id: int = 0  # per host, in allocation order (Host.next_block_id): messages do not depend on
    # which tests ran before in the process
    pins: list[tuple[int, int, object]] = field(default_factory=list)  # (start, end, Pin)
    transient: list[Transient] = field(default_factory=list)

    def __repr__(self) -> str:
        kind = ("huge-split" if self.split else "huge") if self.huge else "4K-run"
        return f"Block#{self.id}({kind} base={self.base:#x} nr={self.nr})"

    @property
    def end(self) -> int:
        return self.base + self.nr

    def pin_refs(self, start: int, end: int) -> int:
        """References pins hold on the folios in ``[start, end)`` (one per pin per folio)."""
        return sum(max(0, min(e, end) - max(s, start)) for s, e, _ in self.pins)

    def extra_refs_at(self, folio_start: int, folio_nr: int, transient: bool = True) -> int:
        """Extra references on the one folio ``[folio_start, +folio_nr)`` (pins, and the
        transient ones unless ``transient=False``)."""
        end = folio_start + folio_nr
        n = sum(1 for s, e, _ in self.pins if s < end and e > folio_start)
        if transient:
            n += sum(t.refs for t in self.transient if folio_start <= t.index < end)
        return n

    def ref_runs(self, start: int, end: int, folio_nr: int,
                 transient: bool = True) -> Iterator[tuple[int, int, int]]:
        """The folios of ``[start, end)`` cut where their refcount changes:
        ``(run_start, run_end, refcount)``; grows with pins, not with pages."""
        bounds = [(s, e) for s, e, _ in self.pins]
        if transient:
            bounds += [(t.index, t.index + folio_nr) for t in self.transient]
        cuts = {start, end}
        for s, e in bounds:
            for p in (s, e):
                if start < p < end:
                    cuts.add(p - (p - start) % folio_nr)
        for a, b in itertools.pairwise(sorted(cuts)):
            yield a, b, folio_nr + self.extra_refs_at(a, folio_nr, transient)

    def first_extra(self, start: int, end: int, folio_nr: int) -> int | None:
        """First folio start in ``[start, end)`` (folios of ``folio_nr`` pages) holding extra
        references, or None."""
        best: int | None = None
        for s, e, _ in self.pins:
            if s < end and e > start:
                cand = max(s, start)
                best = cand if best is None else min(best, cand)
        for t in self.transient:
            if start <= t.index < end:
                best = t.index if best is None else min(best, t.index)
        if best is None:
            return None
        return best - (best - self.base) % folio_nr

    def pinned(self, start: int, end: int) -> list[tuple[int, int]]:
        """Sub-ranges of ``[start, end)`` held by at least one pin (merged, sorted)."""
        spans = sorted((max(s, start), min(e, end)) for s, e, _ in self.pins if s < end and e > start)
        out: list[tuple[int, int]] = []
        for s, e in spans:
            if out and s <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((s, e))
        return out

    def spin_tick(self, start: int, end: int) -> None:
        """One spin of ``folio_ref_freeze``: speculative references count down and drop."""
        keep = []
        for t in self.transient:
            if start <= t.index < end and t.hold is not None:
                t.hold -= 1
                if t.hold <= 0:
                    continue
            keep.append(t)
        self.transient = keep

    def drop_transient(self, t: Transient) -> None:
        if t in self.transient:
            self.transient.remove(t)
