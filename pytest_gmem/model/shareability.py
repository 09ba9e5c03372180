"""The shareability maple tree (mirrors ``kvm_gmem_shareability_*`` in virt/kvm/guest_memfd.c).

Every index ``0 .. size/4K - 1`` has an entry: ``SHARED`` (``SHAREABILITY_ALL``: host and guest
may fault) or ``PRIVATE`` (``SHAREABILITY_GUEST``). Adjacent equal ranges are always coalesced.
"""

from __future__ import annotations

import faults

from .intervals import IntervalMap

SHARED = "shared"  # SHAREABILITY_ALL
PRIVATE = "private"  # SHAREABILITY_GUEST

P_STORE = faults.declare(
    "kvm_gmem_shareability_store", {"ENOMEM"},
    """mas_store_gfp(GFP_KERNEL) in kvm_gmem_shareability_store(): allocating maple-tree nodes
    for the new range fails. In the rollback phase this only WARNs (rfc-v2, fixed). The prealloc
    revision allocates them up front (kvm_gmem_mas_preallocate, phase "prepare"), before
    anything changed.""",
    reached="a conversion stores a new shareability for a range that differs from the target (and, in the "
    "rollback phase, restores the old one after a later failure).",
)
class Shareability:
    """Ranges of SHARED / PRIVATE over the whole file."""

    def __init__(self, nr_pages: int, init_private: bool) -> None:
        self.tree: IntervalMap[str] = IntervalMap()
        self.nr_pages = nr_pages
        if nr_pages:
            self.tree.assign(0, nr_pages, PRIVATE if init_private else SHARED)

    def get(self, index: int) -> str:
        """``kvm_gmem_shareability_get``."""
        v = self.tree.get(index)
        assert v is not None, f"shareability entry missing at {index}"
        return v

    def store(self, start: int, end: int, value: str) -> None:
        """``kvm_gmem_shareability_store`` after its allocation succeeded."""
        self.tree.assign(start, end, value)

    def has_any(self, start: int, end: int, value: str) -> bool:
        """``kvm_gmem_shareability_in_range`` (``kvm_gmem_has_some_shared`` for SHARED).

        O(log ranges): the tree is total, two-valued and coalesced, so ``[start, end)`` holds no
        ``value`` only if one range of the other value covers all of it."""
        if start >= end:
            return False
        hit = self.tree.find(start)
        assert hit is not None, f"shareability entry missing at {start}"
        return hit[2] == value or hit[1] < end

    def ranges(self, start: int = 0, end: int | None = None) -> list[tuple[int, int, str]]:
        return list(self.tree.items(start, self.nr_pages if end is None else end))

    def nodes_needed(self, start: int, end: int) -> int:
        """Maple-tree stores a conversion needs (v8 preallocates this many)."""
        return 1 + sum(1 for _ in self.tree.items(start, end))
