"""The HugeTLB allocator for guest_memfd (mirrors ``mm/guestmem_hugetlb.c``, RFC v2).

Split stashes the hugetlb metadata (kzalloc + xarray store: ENOMEM) and restores the vmemmap
(HVO undo needs struct-page memory: ENOMEM); merge cannot report failure. Freed 4K pieces of a
split page are merged back and returned to the pool by deferred work, once all are free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import faults

from .errors import ENOMEM, oserror
from .folio import Block
from .hugetlb import HugePool, Subpool
from .units import PAGE_SIZE

if TYPE_CHECKING:
    from .host import Host

P_STASH = faults.declare(
    "guestmem_hugetlb_stash_metadata", {"ENOMEM"},
    """guestmem_hugetlb_stash_metadata() in guestmem_hugetlb_split_folio(): kzalloc of the stash
    item or its xa_store into guestmem_hugetlb_stash. After a merge freed the stash, a rollback
    split can fail here (Yan Zhao's review of 38/51).""",
    reached="an allocated 2M/1G folio is split: part of it becomes shared (a conversion to shared, or a "
    "huge page allocated in a shared range, which is split at once) or is punched out. A range "
    "where nothing was allocated yet (no write, no fallocate) has no folio to split.",
)
P_VMEMMAP_RESTORE = faults.declare(
    "hugetlb_vmemmap_restore_folio", {"ENOMEM"},
    """hugetlb_vmemmap_restore_folio() in guestmem_hugetlb_split_folio(): undoing HVO needs
    memory for the struct pages; on failure the metadata is unstashed and -ENOMEM returned.""",
    reached="as for guestmem_hugetlb_stash_metadata, when the folio's vmemmap is optimized (HVO): a folio "
    "merged after an earlier split whose hugetlb_vmemmap_optimize_folio failed kept its vmemmap "
    "and has none to restore.",
)
P_VMEMMAP_OPTIMIZE = faults.declare(
    "hugetlb_vmemmap_optimize_folio", {"ENOMEM"},
    """hugetlb_vmemmap_optimize_folio() in guestmem_hugetlb_merge_folio(): re-enabling HVO fails
    silently; the folio keeps its vmemmap (so the next split needs no memory for it).""",
    reached="a split huge folio is merged again: the last shared part of a huge page is converted back to "
    "private (or the whole page becomes private again after a punch hole), after an earlier "
    "split.",
)


def vmemmap_pages(nr_pages: int) -> int:
    """4K pages of struct page that HVO frees for a huge page of ``nr_pages`` (64 B each, one
    page kept)."""
    return max(0, nr_pages * 64 // PAGE_SIZE - 1)


class HugetlbAllocator:
    """``guestmem_hugetlb_ops`` for one inode."""

    custom = True

    def __init__(self, host: Host, pool: HugePool, size_pages: int) -> None:
        """Mirrors ``guestmem_hugetlb_setup``: subpool with max = min = the whole file (ENOMEM)."""
        self.host = host
        self.pool = pool
        self.page_size = pool.name
        self.nr_pages_in_folio = pool.nr_pages
        self.spool = Subpool.new(pool, size_pages // pool.nr_pages)

    def alloc(self, owner: object, index: int, count: int) -> tuple[Block | None, int]:
        """Mirrors ``guestmem_hugetlb_alloc_folio``: subpool get + hugetlb alloc (ENOMEM)."""
        n = self.nr_pages_in_folio
        self.spool.get_page(racy=not self.host.revision.hugetlb_fault_mutex)
        block = Block(index - index % n, n, huge=True, owner=owner, spool=self.spool,
                      id=self.host.next_block_id())
        self.host.live_blocks.add(block)
        return block, n

    def split_folio(self, block: Block, phase: str) -> None:
        """Mirrors ``guestmem_hugetlb_split_folio``; raises OSError(ENOMEM) with nothing changed."""
        if block.split:
            return
        self.prepare_split(block, phase)
        block.split = True

    def prepare_split(self, block: Block, phase: str) -> None:
        """The fallible half of the split: stash the metadata, restore the vmemmap (ENOMEM,
        nothing changed). The prealloc revision calls it before its point of no return."""
        ctx = {"phase": phase, "index": block.base, "folio_order": block.nr.bit_length() - 1}
        if (f := P_STASH.hit(**ctx)) is not None:
            self.host.note_fault(f)
            raise oserror(ENOMEM, "guestmem_hugetlb_stash_metadata: kzalloc failed")
        if block.hvo:
            need = vmemmap_pages(block.nr)
            f = P_VMEMMAP_RESTORE.hit(**ctx)
            if f is not None or self.host.pages_available(need) < need:
                if f is not None:
                    self.host.note_fault(f)
                raise oserror(ENOMEM, "hugetlb_vmemmap_restore_folio: no memory for struct pages")
            self.host.charge_pages(need)
            block.hvo = False

    def cancel_split(self, block: Block) -> None:
        """Undo :meth:`prepare_split` (free the stash, give the vmemmap memory back)."""
        if not block.split and not block.hvo:
            self.host.uncharge_pages(vmemmap_pages(block.nr))
            block.hvo = True

    def merge_folio(self, block: Block, phase: str) -> None:
        """Mirrors ``guestmem_hugetlb_merge_folio`` (void: cannot fail; HVO failure is silent)."""
        if not block.split:
            return
        block.split = False
        ctx = {"phase": phase, "index": block.base, "folio_order": block.nr.bit_length() - 1}
        f = P_VMEMMAP_OPTIMIZE.hit(**ctx)
        if f is not None:
            self.host.note_fault(f)
            return
        self.host.uncharge_pages(vmemmap_pages(block.nr))
        block.hvo = True

    def free_pages(self, block: Block, count: int) -> None:
        """The last reference on ``count`` pages dropped. Mirrors ``free_huge_folio`` for an
        unsplit page and ``guestmem_hugetlb_handle_folio_put`` (deferred) for split pieces."""
        if not block.split:
            block.freed = block.nr
            self._return_to_pool(block)
            return
        self.host.queue_work(f"guestmem_hugetlb_cleanup_folio({block!r}, {count})",
                             lambda: self._piece_freed(block, count))

    def _piece_freed(self, block: Block, count: int) -> None:
        """The workqueue side: count freed pieces; merge and free once all are free."""
        block.freed += count
        if block.freed >= block.nr:
            self.merge_folio(block, "deferred")
            self._return_to_pool(block)

    def _return_to_pool(self, block: Block) -> None:
        """Mirrors the end of ``free_huge_folio``: vmemmap given back if it was restored, then
        ``hugepage_subpool_put_pages`` and the page is free in the hstate. Cannot fail."""
        if not block.hvo:
            self.host.uncharge_pages(vmemmap_pages(block.nr))
            block.hvo = True
        assert block.spool is not None
        block.spool.put_page()
        self.host.live_blocks.discard(block)

    def teardown(self) -> None:
        """Mirrors ``guestmem_hugetlb_teardown``: ``hugepage_put_subpool``; the subpool (and the
        reservations it holds) lives on until its last page in use comes back."""
        self.spool.release()
