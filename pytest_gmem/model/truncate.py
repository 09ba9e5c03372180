"""Allocation and truncation (mirrors ``kvm_gmem_get_folio``, ``kvm_gmem_allocate``,
``kvm_gmem_punch_hole``, ``kvm_gmem_truncate_inode_range`` and its helpers, and inode eviction
in virt/kvm/guest_memfd.c, RFC v2 patches 33/51 and "Merge and truncate on PUNCH_HOLE").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import restructure
from .conversion import has_safe_refcount
from .errors import EAGAIN, EINVAL, ENOMEM, ConvFailure, KernelBug, oserror
from .filemap import FolioRun
from .folio import Block
from .shareability import SHARED
from .units import PAGE_SHIFT

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd


# --- allocation ----------------------------------------------------------------------------------
def get_folios(g: GuestMemfd, start: int, end: int) -> None:
    """Make sure every index in ``[start, end)`` has a folio (``kvm_gmem_get_folio`` per index,
    batched over holes). OSError ENOMEM when the allocator fails."""
    if not g.alloc.custom:
        for s, e in list(g.filemap.map.gaps(start, end)):
            cur = s
            while cur < e:
                block, got = g.alloc.alloc(g, cur, e - cur)
                assert block is not None
                g.filemap.add(cur, cur + got, block, 1)
                cur += got
        return
    n = g.nr_pages_in_folio
    for h in range(start - start % n, end, n):
        if g.filemap.lookup(h) is None:
            get_folio(g, h)


def get_folio(g: GuestMemfd, index: int) -> FolioRun:
    """Mirrors ``kvm_gmem_get_folio`` with the HugeTLB allocator: allocate a huge folio, add it
    at the huge-aligned index (ENOMEM), split it at once when its range has a shared page.
    KernelBug when 4K pieces of an earlier huge page are left in the range (-EEXIST, retried)."""
    n = g.nr_pages_in_folio
    block, _ = g.alloc.alloc(g, index, 1)
    assert block is not None
    base = block.base
    needs_split = g.share.has_any(base, base + n, SHARED)
    if needs_split and g.host.revision.prealloc:
        try:  # prealloc: the split's stash and vmemmap before the folio is visible
            g.alloc.prepare_split(block, "prepare")
        except OSError:
            g.alloc.free_pages(block, n)
            raise
    if (held := next(g.filemap.runs(base, base + n), None)) is not None:
        g.alloc.free_pages(block, n)  # -EEXIST: folio_put(), goto retry: the same miss again
        raise KernelBug(
            "kvm_gmem_get_folio",
            f"livelock: index {index:#x} has no folio but the huge page at {base:#x} still holds "
            f"the 4K folio at {held.start:#x} (of {held.block!r}); __filemap_add_folio() of the new "
            f"huge folio returns -EEXIST and the lookup-allocate-add loop retries forever")
    if not restructure.add_folio(g, base, base + n, block, n, "alloc"):
        g.alloc.free_pages(block, n)
        raise oserror(ENOMEM, f"__kvm_gmem_filemap_add_folio failed at index {base:#x}")
    folio = FolioRun(base, base + n, block, n)
    if needs_split:
        if g.host.revision.prealloc:
            g.filemap.remove(base, base + n)
            block.split = True  # prepared above
            g.filemap.add(base, base + n, block, 1)
        else:
            try:
                restructure.split_folio_in_filemap(g, folio, "alloc")
            except ConvFailure as e:
                # err: filemap_remove_folio(folio) - the folio goes back to the pool
                again = g.filemap.lookup(base)
                if again is not None and again.block is block:
                    g.filemap.remove(again.start, again.end)
                    g.alloc.free_pages(block, n)
                raise oserror(e.errno, f"kvm_gmem_try_split_folio_in_filemap: {e.why}") from None
    found = g.filemap.lookup(index)
    assert found is not None
    return found


def allocate(g: GuestMemfd, offset: int, length: int) -> None:
    """Mirrors ``kvm_gmem_allocate``: EINVAL past the size; with HugeTLB both ends are rounded
    down to huge pages (a shorter fallocate allocates nothing); ENOMEM from the allocator."""
    if offset + length > g.size:
        raise oserror(EINVAL, f"kvm_gmem_allocate: {offset:#x}+{length:#x} is past the size {g.size:#x}")
    start, end = offset >> PAGE_SHIFT, (offset + length) >> PAGE_SHIFT
    if g.alloc.custom:
        n = g.nr_pages_in_folio
        start, end = start - start % n, end - end % n
    get_folios(g, start, end)


# --- releasing memory ------------------------------------------------------------------------------
def release(g: GuestMemfd, block: Block, start: int, end: int) -> None:
    """Pages ``[start, end)`` of ``block`` left the filemap (the filemap's ``folio_put``): the
    unpinned ones go to the allocator (``free_huge_folio`` / the deferred merge). Cannot fail."""
    pinned = sum(e - s for s, e in block.pinned(start, end))
    block.transient = [t for t in block.transient if not start <= t.index < end]
    free = (end - start) - pinned
    if free > 0:
        owner = block.owner
        assert hasattr(owner, "alloc")
        owner.alloc.free_pages(block, free)


def drop_folios(g: GuestMemfd, start: int, end: int) -> int:
    """``truncate_inode_folio`` on every folio in ``[start, end)`` (huge ones whole): unmap it
    from every process, forget its contents, free its memory. Returns pages truncated."""
    total = 0
    for run in list(g.filemap.runs(start, end)):
        s, e = run.start, run.end
        g.filemap.remove(s, e)
        for m in g.mappings:
            m.ptes.clear(s, e)
        g.contents.zero(s, e)
        release(g, run.block, s, e)
        total += e - s
    return total


# --- punch hole ----------------------------------------------------------------------------------
def punch_hole(g: GuestMemfd, offset: int, length: int) -> None:
    """Mirrors ``kvm_gmem_punch_hole``: zap the guest, then truncate (HugeTLB: merge-truncate
    whole huge pages, EAGAIN when pinned; zero partial ones); shareability is unchanged."""
    start, end = offset >> PAGE_SHIFT, (offset + length) >> PAGE_SHIFT
    g.vm.zap_all(g, start, end)
    if g.alloc.custom:
        truncate_inode_range(g, offset, offset + length)
    else:
        drop_folios(g, start, min(end, g.nr_pages))
    check_punched(g, start, min(end, g.nr_pages))


def check_punched(g: GuestMemfd, start: int, end: int) -> None:
    """The file-level contract of a punch hole that returned success: the range reads zeros and
    its whole huge pages hold no folio. A breach is recorded for ``host.check()`` ("[8 punch]"),
    at the operation that caused it; O(ranges)."""
    n = g.nr_pages_in_folio if g.alloc.custom else 1
    full_start, full_end = -(-start // n) * n, end - end % n
    problems: list[str] = []
    if full_end > full_start and (left := next(g.filemap.runs(full_start, full_end), None)) is not None:
        problems.append(f"folios remain at [{left.start << PAGE_SHIFT:#x}, {left.end << PAGE_SHIFT:#x}) "
                        f"of {left.block!r}, inside the whole huge pages it punched")
    written = [(s, e) for s, e, v in g.contents.pages.items(start, end) if v != 0]
    if written:
        s, e = written[0]
        problems.append(f"[{s << PAGE_SHIFT:#x}, {e << PAGE_SHIFT:#x}) still holds data")
    for text in problems:
        g.host.contract_failures.append(
            f"{g.host.describe_file(g)}: punch hole [{start << PAGE_SHIFT:#x}, {end << PAGE_SHIFT:#x}) "
            f"returned success but {text} (during {g.host._op})")


def truncate_inode_range(g: GuestMemfd, lstart: int, lend: int, exiting: bool = False) -> None:
    """Mirrors ``kvm_gmem_truncate_inode_range``: zero the partial huge page at the head,
    truncate the whole ones, zero the partial one at the tail, then return the truncation's
    error (EAGAIN: the tail is zeroed even when a whole page could not be truncated)."""
    n = g.nr_pages_in_folio
    start = lstart >> PAGE_SHIFT
    end = min(lend, g.size) >> PAGE_SHIFT
    full_start = -(-start // n) * n
    full_end = end - end % n
    if start < full_start:
        zero_range(g, start, min(full_start, end))
    error: OSError | None = None
    if full_end > full_start:
        try:
            truncate_inode_aligned_pages(g, full_start, full_end - full_start, exiting)
        except OSError as exc:  # ret = kvm_gmem_truncate_inode_aligned_pages(...)
            error = exc
    if end > full_end and end > full_start:
        zero_range(g, max(full_end, start), end)
    if error is not None:
        raise error


def zero_range(g: GuestMemfd, start: int, end: int) -> None:
    """Mirrors ``kvm_gmem_zero_range``: the pages stay allocated, their contents become zeros."""
    if start < end:  # holes already read zeros; allocated pages are cleared in place
        g.contents.zero(start, end)


def truncate_inode_aligned_pages(g: GuestMemfd, index: int, nr_pages: int, exiting: bool) -> None:
    """Mirrors ``kvm_gmem_truncate_inode_aligned_pages``: a huge page with no shared page (or
    any, when the inode is exiting) is truncated as it is; otherwise merge-truncated, which
    fails with EAGAIN on unexpected references (stops at the first error)."""
    n = g.nr_pages_in_folio
    for idx in range(index, index + nr_pages, n):
        if exiting or not g.share.has_any(idx, idx + n, SHARED):
            drop_folios(g, idx, idx + n)
        else:
            merge_truncate_indices(g, idx)


def merge_truncate_indices(g: GuestMemfd, idx: int) -> None:
    """Mirrors ``kvm_gmem_merge_truncate_indices``: unmap, refcount check (EAGAIN), merge,
    truncate. rfc-v2 WARNs when the merge fails and truncates only the folio it looked up
    (defect 7); fixed then truncates every 4K piece (the allocator merges the page once they
    are all freed). The prealloc revision merges in the allocator and frees the page without
    re-adding it to the filemap first, so nothing can fail after the check."""
    n = g.nr_pages_in_folio
    from .conversion import unmap_mapping_pages

    unmap_mapping_pages(g, idx, idx + n)
    bad = has_safe_refcount(g, idx, n, clamp=False, drain=g.host.revision.prealloc)
    if bad is not None:
        raise oserror(EAGAIN, f"kvm_gmem_merge_truncate_indices: folio at index {bad:#x} is pinned")
    f = g.filemap.lookup(idx)
    if f is None:
        return
    if g.host.revision.prealloc:
        # prepared: the pieces are frozen (checked above); merging them in the allocator and
        # freeing the whole page at once needs no allocation, so nothing can fail here
        if f.folio_nr == 1 and g.filemap.resident(f.block, idx, idx + n) == [(idx, idx + n)]:
            g.filemap.remove(idx, idx + n)
            g.alloc.merge_folio(f.block, "truncate")
            g.filemap.add(idx, idx + n, f.block, n)
        drop_folios(g, idx, idx + n)
        return
    partial = g.host.revision.truncate_only_first_on_merge_failure
    try:
        restructure.merge_folio_in_filemap(g, f, "truncate", undo=partial)
    except ConvFailure as e:
        if partial:  # WARN_ON(kvm_gmem_merge_folio_in_filemap(inode, f)); truncate_inode_folio(f)
            g.host.warn("kvm_gmem_merge_truncate_indices", f"WARN_ON(kvm_gmem_merge_folio_in_filemap()): {e.why}")
            f = g.filemap.lookup(idx)
            if f is not None:
                drop_folios(g, f.start, f.end)
            return
        if not g.filemap.resident(f.block, idx, idx + n):
            free_unlisted(g, f.block, idx, idx + n)  # the merged folio, out of the filemap
            return
    drop_folios(g, idx, idx + n)  # fixed: what is left of the huge page, merged or in pieces


def free_unlisted(g: GuestMemfd, block: Block, start: int, end: int) -> None:
    """``folio_put`` on a folio already out of the filemap (frozen by a failed merge): its
    contents are forgotten, its memory freed. Cannot fail."""
    for m in g.mappings:
        m.ptes.clear(start, end)
    g.contents.zero(start, end)
    release(g, block, start, end)


def evict_inode(g: GuestMemfd) -> None:
    """The last reference to the inode went: ``truncate_inode_pages_final_prepare`` + truncate
    of the whole file with ``mapping_exiting`` (no merge, no checks), allocator teardown."""
    g.host.begin_op("evict_inode(guest_memfd)")
    if g.alloc.custom:
        truncate_inode_range(g, 0, g.size, exiting=True)
    else:
        drop_folios(g, 0, g.nr_pages)
    g.alloc.teardown()
    g.alive = False
    if g in g.host.files:
        g.host.files.remove(g)
    if g in g.vm.files:
        g.vm.files.remove(g)
