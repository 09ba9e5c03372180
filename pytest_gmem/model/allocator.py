"""Allocators behind a guest_memfd inode (``struct guestmem_allocator_operations``).

The default allocator hands out 4K folios from the page allocator (``filemap_alloc_folio``);
it is not a "custom allocator", so conversions never split or merge. ``guestmem_hugetlb.py``
holds the HugeTLB one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import faults

from .errors import ENOMEM, oserror
from .folio import Block

if TYPE_CHECKING:
    from .host import Host

P_ALLOC_4K = faults.declare(
    "filemap_alloc_folio", {"ENOMEM"},
    """filemap_alloc_folio(gfp, 0) in kvm_gmem_get_folio() for the default (4K) allocator, or
    mem_cgroup_charge() after it: the page allocator has no page for the file.""",
    reached="a file with 4K pages (page_size 4K, the default allocator) allocates a page: the first guest "
    "or host access to an unallocated page, fallocate, or a conversion that needs the page. Files "
    "with 2M or 1G pages never reach it.",
)


class Allocator(Protocol):
    """What guest_memfd calls on its allocator."""

    custom: bool
    nr_pages_in_folio: int
    page_size: str

    def alloc(self, owner: object, index: int, count: int) -> tuple[Block | None, int]:
        """Allocate for ``index`` (count pages for the 4K allocator, one huge page otherwise);
        returns the block and how many pages it has; (None, 0) with the error raised."""
        ...

    def split_folio(self, block: Block, phase: str) -> None: ...

    def prepare_split(self, block: Block, phase: str) -> None: ...

    def cancel_split(self, block: Block) -> None: ...

    def merge_folio(self, block: Block, phase: str) -> None: ...

    def free_pages(self, block: Block, count: int) -> None: ...

    def teardown(self) -> None: ...


class PageAllocator:
    """The default 4K allocator (no ``guestmem_allocator_operations``)."""

    custom = False
    nr_pages_in_folio = 1
    page_size = "4K"

    def __init__(self, host: Host) -> None:
        self.host = host

    def alloc(self, owner: object, index: int, count: int) -> tuple[Block | None, int]:
        """Mirrors ``filemap_alloc_folio`` + ``mem_cgroup_charge`` for ``count`` consecutive
        indices (kvm_gmem_allocate's loop, batched); ENOMEM after the pages before it."""
        got = count
        f = P_ALLOC_4K.hit_many(count, index=index, folio_order=0)
        if f is not None:
            self.host.note_fault(f)
            got = f.offset
        got = min(got, self.host.pages_available(got))
        if got == 0:
            raise oserror(ENOMEM, f"filemap_alloc_folio failed at index {index:#x}")
        self.host.charge_pages(got)
        return Block(index, got, huge=False, owner=owner, id=self.host.next_block_id()), got

    def split_folio(self, block: Block, phase: str) -> None:
        """Order-0 folios are never split (no custom allocator); cannot fail."""
        return None

    def prepare_split(self, block: Block, phase: str) -> None:
        """Nothing to prepare for order-0 folios; cannot fail."""
        return None

    def cancel_split(self, block: Block) -> None:
        """Nothing was prepared."""
        return None

    def merge_folio(self, block: Block, phase: str) -> None:
        """Nothing to merge for order-0 folios; cannot fail."""
        return None

    def free_pages(self, block: Block, count: int) -> None:
        """Mirrors the final ``folio_put`` of order-0 page-cache folios: memory goes back."""
        block.freed += count
        self.host.uncharge_pages(count)
        if block.freed >= block.nr:
            self.host.live_blocks.discard(block)

    def teardown(self) -> None:
        """No per-inode allocator state to free (``kvm_gmem_free_inode``)."""
        return None
