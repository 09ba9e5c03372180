"""The page cache of one inode (mirrors the parts of ``mm/filemap.c`` guest_memfd uses).

Each interval is either one huge folio (``nr_pages`` 512 or 262144) or a run of 4K folios of
the same block. Lookups are ``O(log ranges)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from .folio import Block
from .intervals import IntervalMap


class Seg(NamedTuple):
    """Filemap value: the block, and the size of each folio in the interval."""

    block: Block
    folio_nr: int


class FolioRun(NamedTuple):
    """``count`` folios of ``folio_nr`` pages each, from ``start``, all of ``block``."""

    start: int
    end: int
    block: Block
    folio_nr: int


def _mergeable(a: Seg, b: Seg) -> bool:
    return a.folio_nr == 1 and b.folio_nr == 1 and a.block is b.block


class Filemap:
    """index -> folio, run-length encoded."""

    def __init__(self) -> None:
        self.map: IntervalMap[Seg] = IntervalMap(_mergeable)

    def lookup(self, index: int) -> FolioRun | None:
        """``filemap_get_folio``: the folio containing ``index``."""
        hit = self.map.find(index)
        if hit is None:
            return None
        s, e, seg = hit
        if seg.folio_nr == 1:
            return FolioRun(index, index + 1, seg.block, 1)
        return FolioRun(s, e, seg.block, seg.folio_nr)

    def runs(self, start: int, end: int) -> Iterator[FolioRun]:
        """Folio runs overlapping ``[start, end)``; 4K runs are clipped, huge folios whole."""
        for s, e, seg in self.map.items(start, end, clip=False):
            if seg.folio_nr == 1:
                yield FolioRun(max(s, start), min(e, end), seg.block, 1)
            else:
                yield FolioRun(s, e, seg.block, seg.folio_nr)

    def all_runs(self) -> Iterator[FolioRun]:
        for s, e, seg in self.map.items():
            yield FolioRun(s, e, seg.block, seg.folio_nr)

    def add(self, start: int, end: int, block: Block, folio_nr: int) -> None:
        """Insert folios (a huge folio or a run of 4K folios) at ``[start, end)``."""
        if folio_nr == 1:
            self.map.assign(start, end, Seg(block, 1))
        else:
            self.map.put(start, end, Seg(block, folio_nr))

    def remove(self, start: int, end: int) -> None:
        """Drop whatever folios cover ``[start, end)`` (callers pass whole folios)."""
        self.map.clear(start, end)

    def nr_runs(self) -> int:
        return len(self.map)

    def resident(self, block: Block, start: int, end: int) -> list[tuple[int, int]]:
        """Sub-ranges of ``[start, end)`` where this block's pages are in the filemap."""
        return [(s, e) for s, e, seg in self.map.items(start, end) if seg.block is block]
