"""The guest's page tables for one file (mirrors the KVM MMU side: ``kvm_gmem_get_pfn``,
``kvm_gmem_max_mapping_level``, ``kvm_gmem_unmap_private``, ``kvm_mmu_unmap_gfn_range``).

Mappings are stored per file index as ``(level, private, base)``; a 2M/1G mapping covers its
whole huge range and is zapped whole when any part of it is invalidated.
"""

from __future__ import annotations

from typing import NamedTuple

from .intervals import IntervalMap
from .units import PAGES_PER


class GMap(NamedTuple):
    level: str  # "4K", "2M", "1G"
    private: bool
    base: int  # first index of the mapping


def _mergeable(a: GMap, b: GMap) -> bool:
    return a.level == "4K" and b.level == "4K" and a.private == b.private


class GuestMappings:
    """SPTEs (or S-EPT entries) pointing into one file."""

    def __init__(self) -> None:
        self.map: IntervalMap[GMap] = IntervalMap(_mergeable)

    def level_at(self, index: int) -> str | None:
        m = self.map.get(index)
        return None if m is None else m.level

    def install(self, start: int, end: int, level: str, private: bool) -> None:
        """Map ``[start, end)``; a huge level must cover exactly one aligned huge range."""
        if level == "4K":
            self.map.assign(start, end, GMap("4K", private, 0))
        else:
            self.map.put(start, end, GMap(level, private, start))

    def zap(self, start: int, end: int, private: bool | None = None) -> list[tuple[int, int, GMap]]:
        """Unmap every mapping that intersects ``[start, end)`` (huge ones whole), filtered by
        private / shared (None: both). Returns what was zapped."""
        zapped = []
        for s, e, m in list(self.map.items(start, end, clip=False)):
            if private is not None and m.private != private:
                continue
            if m.level == "4K":
                s, e = max(s, start), min(e, end)
            zapped.append((s, e, m))
            self.map.clear(s, e)
        return zapped

    def ranges(self) -> list[tuple[int, int, GMap]]:
        return list(self.map.items())


def level_for_order(nr_pages: int) -> str:
    """``kvm_max_level_for_order``: order >= 18 -> 1G, >= 9 -> 2M, else 4K."""
    if nr_pages >= PAGES_PER["1G"]:
        return "1G"
    if nr_pages >= PAGES_PER["2M"]:
        return "2M"
    return "4K"
