"""Split and merge of huge folios in the filemap (mirrors the CONFIG_KVM_GMEM_HUGETLB part of
virt/kvm/guest_memfd.c from RFC v2 patch 38/51: ``filemap_remove_folio_for_restructuring``,
``kvm_gmem_split_folio_in_filemap``, ``kvm_gmem_merge_folio_in_filemap``,
``kvm_gmem_try_merge_folio_in_filemap``, ``kvm_gmem_restructure_folios_in_range``), plus the
prepare/apply halves the ``prealloc`` revision uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import faults

from .errors import EAGAIN, ENOMEM, ConvFailure, KernelBug, explanation
from .filemap import FolioRun
from .folio import Block, Transient
from .revisions import KERNEL_BUG_SPIN_LIMIT, SPIN_RETRY_LIMIT, UNDERFLOW_STEP_LIMIT
from .shareability import SHARED
from .units import U64_MASK

if TYPE_CHECKING:
    from .conversion import Work
    from .guest_memfd import GuestMemfd

P_FILEMAP_ADD = faults.declare(
    "__kvm_gmem_filemap_add_folio", {"ENOMEM"},
    """__filemap_add_folio() (xarray node allocation) when guest_memfd adds a folio: the new huge
    folio at allocation, each 4K piece after a split, the merged folio after a merge, and the
    re-adds of every undo path (WARN when those fail).""",
    reached="a folio is added to the filemap: a new huge folio at allocation (2M/1G pages), each 4K piece "
    "after a split, the merged folio after a merge, and the re-adds of undo paths.",
)
P_REMOVE = faults.declare(
    "filemap_remove_folio_for_restructuring", {"speculative_refcount", "extra_refcount"},
    """folio_ref_freeze(folio, nr_pages) before removing a folio for split/merge: speculative
    references (GUP-fast, memory-failure, page walkers) make it fail; rfc-v2 spins forever on
    them (WARN_ONCE), fixed gives up with EAGAIN after a bounded number of spins.""",
    reached="a folio is removed from the filemap to be split or merged: a conversion or punch hole that "
    "splits or merges an allocated huge folio.",
)


def attach_refs(g: GuestMemfd, block: Block, index: int, fired: faults.Fired) -> None:
    """Apply a fired refcount kind to the folio at ``index``; dropped when the arming ends."""
    kind = fired.kind
    if isinstance(kind, faults.SpeculativeRefcount):
        t = Transient(index, kind.refs, kind.hold, fired.label())
    elif isinstance(kind, faults.ExtraRefcount):
        t = Transient(index, kind.refs, None, fired.label())
    else:
        return
    block.transient.append(t)
    fired.on_disarm(lambda: block.drop_transient(t))


def _fail(errno: int, index: int | None, why: str) -> ConvFailure:
    return ConvFailure(errno, index, why)


def remove_for_restructuring(g: GuestMemfd, start: int, end: int, block: Block, folio_nr: int,
                             phase: str) -> None:
    """Mirrors ``filemap_remove_folio_for_restructuring`` for the folios in ``[start, end)``:
    freeze each folio's refcount at its filemap references, then remove it. rfc-v2 spins
    without bound (KernelBug); fixed/prealloc report EAGAIN after SPIN_RETRY_LIMIT spins,
    having removed nothing."""
    count = (end - start) // folio_nr
    f = P_REMOVE.hit_many(count, index=start, phase=phase, folio_order=folio_nr.bit_length() - 1)
    if f is not None:
        g.host.note_fault(f)
        attach_refs(g, block, start + f.offset * folio_nr, f)
    wait_for_refs(g, block, start, end, folio_nr)
    g.filemap.remove(start, end)


def wait_for_refs(g: GuestMemfd, block: Block, start: int, end: int, folio_nr: int,
                  error_floor: int = 0) -> None:
    """The ``folio_ref_freeze`` spin of every folio in ``[start, end)``."""
    unbounded = g.host.revision.unbounded_spin
    spins = 0
    while (bad := block.first_extra(start, end, folio_nr)) is not None:
        refs = folio_nr + block.extra_refs_at(bad, folio_nr)
        if unbounded:
            g.host.warn("filemap_remove_folio_for_restructuring",
                        f"Spinning on folio index={bad:#x} refcount={refs}", once=True)
            if spins >= KERNEL_BUG_SPIN_LIMIT:
                raise KernelBug(
                    "filemap_remove_folio_for_restructuring",
                    f"unbounded spin: folio at index {bad:#x} (order {folio_nr.bit_length() - 1}) "
                    f"keeps refcount {refs} != {folio_nr} after {spins} iterations of "
                    "while (!folio_ref_freeze(...)) with the invalidate lock held exclusively "
                    "(soft lockup; to-shared conversion has no refcount check)",
                )
        elif spins >= SPIN_RETRY_LIMIT:
            raise _fail(EAGAIN, max(bad, error_floor),
                        f"folio at index {bad:#x} kept refcount {refs} after {spins} spins")
        block.spin_tick(bad, bad + folio_nr)
        spins += 1


def add_folio(g: GuestMemfd, index: int, end: int, block: Block, folio_nr: int, phase: str) -> bool:
    """``__kvm_gmem_filemap_add_folio`` for one folio; False when it failed (ENOMEM)."""
    f = P_FILEMAP_ADD.hit(index=index, phase=phase, folio_order=folio_nr.bit_length() - 1)
    if f is not None:
        g.host.note_fault(f)
        return False
    g.filemap.add(index, end, block, folio_nr)
    return True


def add_pieces(g: GuestMemfd, start: int, end: int, block: Block, phase: str) -> int | None:
    """Add the 4K pieces ``[start, end)`` one by one (batched); returns the index that failed,
    or None when all were added."""
    f = P_FILEMAP_ADD.hit_many(end - start, index=start, phase=phase, folio_order=0)
    stop = end if f is None else start + f.offset
    if stop > start:
        g.filemap.add(start, stop, block, 1)
    if f is not None:
        g.host.note_fault(f)
        return stop
    return None


def split_folio_in_filemap(g: GuestMemfd, f: FolioRun, phase: str) -> None:
    """Mirrors ``kvm_gmem_split_folio_in_filemap``: remove, allocator split (ENOMEM), re-add
    each 4K piece (ENOMEM); on failure re-add the original folio (WARN if that fails)."""
    if f.folio_nr == 1:
        return
    block, orig = f.block, f.start
    remove_for_restructuring(g, f.start, f.end, block, f.folio_nr, phase)
    try:
        g.alloc.split_folio(block, phase)
    except OSError as e:
        _readd_original(g, f, phase)
        raise _fail(e.errno or ENOMEM, None, explanation(e)) from None
    failed = add_pieces(g, orig, f.end, block, phase)
    if failed is None:
        return
    # rollback: remove the pieces added so far, merge, re-add the original folio
    if failed > orig:
        try:
            remove_for_restructuring(g, orig, failed, block, 1, "rollback")
        except ConvFailure as e:
            # fixed: the bounded spin gave up inside a rollback, which cannot fail: WARN and
            # leave the folio split, putting the pieces not yet re-added back as 4K folios
            g.host.warn("kvm_gmem_split_folio_in_filemap",
                        f"WARN_ON(undo of the split at {orig:#x}): {e.why}; the folio stays split")
            cur = failed
            while (lost := add_pieces(g, cur, f.end, block, "rollback")) is not None:
                g.host.warn("kvm_gmem_split_folio_in_filemap",
                            f"WARN_ON(__kvm_gmem_filemap_add_folio(piece, {lost:#x})): piece lost")
                cur = lost + 1
            raise _fail(ENOMEM, None, f"__kvm_gmem_filemap_add_folio failed for piece {failed:#x}") from None
    g.alloc.merge_folio(block, "rollback")
    _readd_original(g, f, phase)
    raise _fail(ENOMEM, None, f"__kvm_gmem_filemap_add_folio failed for piece {failed:#x}")


def _readd_original(g: GuestMemfd, f: FolioRun, phase: str) -> None:
    """The ``err:`` label of ``kvm_gmem_split_folio_in_filemap``: WARN_ON(re-add) (ENOMEM)."""
    if not add_folio(g, f.start, f.end, f.block, f.folio_nr, "rollback"):
        g.host.warn("kvm_gmem_split_folio_in_filemap",
                    f"WARN_ON(__kvm_gmem_filemap_add_folio(folio, {f.start:#x})): folio lost from "
                    "the filemap")


def merge_folio_in_filemap(g: GuestMemfd, first: FolioRun, phase: str, undo: bool = True) -> None:
    """Mirrors ``kvm_gmem_merge_folio_in_filemap``: remove every piece, allocator merge (cannot
    fail), re-add the merged folio (ENOMEM); on failure split again and re-add each piece,
    WARNing on every failure (the stash was freed by the merge, so the split can fail).
    ``undo=False`` (a merge before truncation under ``fixed``): a failed re-add leaves the merged
    folio out of the filemap, frozen, for the caller to free."""
    n = g.nr_pages_in_folio
    index = first.start
    if first.folio_nr == n:
        return
    block = first.block
    resident = g.filemap.resident(block, index, index + n)
    if resident != [(index, index + n)]:
        missing = index if not resident else (resident[0][1] if resident[0][0] == index else index)
        raise KernelBug("kvm_gmem_merge_folio_in_filemap",
                        f"piece at index {missing:#x} of the huge page at {index:#x} is not in the "
                        "filemap (lost by an earlier failed rollback): folio_page() walks freed "
                        "memory")
    remove_for_restructuring(g, index, index + n, block, 1, phase)
    g.alloc.merge_folio(block, phase)
    if add_folio(g, index, index + n, block, n, phase):
        return
    if not undo:
        raise _fail(ENOMEM, None, "__kvm_gmem_filemap_add_folio failed for the merged folio")
    try:
        g.alloc.split_folio(block, "rollback")
    except OSError as e:
        g.host.warn("kvm_gmem_merge_folio_in_filemap", f"WARN_ON(split_folio()) = {e.strerror}")
        if add_folio(g, index, index + n, block, n, "rollback"):
            g.host.warn("kvm_gmem_merge_folio_in_filemap",
                        "WARN_ON(__kvm_gmem_filemap_add_folio()) = -EEXIST for every tail page "
                        "(the folio is still compound)")
        else:
            g.host.warn("kvm_gmem_merge_folio_in_filemap",
                        f"WARN_ON(__kvm_gmem_filemap_add_folio(folio, {index:#x})): folio lost")
        raise _fail(ENOMEM, None, "__kvm_gmem_filemap_add_folio failed for the merged folio") from None
    cur = index
    while cur < index + n:
        failed = add_pieces(g, cur, index + n, block, "rollback")
        if failed is None:
            break
        g.host.warn("kvm_gmem_merge_folio_in_filemap",
                    f"WARN_ON(__kvm_gmem_filemap_add_folio(piece, {failed:#x})): piece lost")
        cur = failed + 1
    raise _fail(ENOMEM, None, "__kvm_gmem_filemap_add_folio failed for the merged folio")


def try_merge_folio_in_filemap(g: GuestMemfd, first: FolioRun, phase: str) -> None:
    """Mirrors ``kvm_gmem_try_merge_folio_in_filemap``: merge only a fully private huge range."""
    n = g.nr_pages_in_folio
    if g.share.has_any(first.start, first.start + n, SHARED):
        return
    merge_folio_in_filemap(g, first, phase)


def restructure_folios_in_range(g: GuestMemfd, start: int, nr_pages: int, split: bool, phase: str) -> None:
    """Mirrors ``kvm_gmem_restructure_folios_in_range``: split (to shared) or try to merge (to
    private) each huge page of the range rounded out; on failure undo the huge pages before it.
    rfc-v2 keeps the unsigned ``for (index -= n; index >= start; index -= n)`` loop, which
    never ends when ``start == 0`` (KernelBug), and undoes every huge page it walks, also those
    the forward loop left alone (defect 6: a page split before the conversion is merged over
    its shared page); ``fixed`` undoes only what the forward loop changed."""
    if not g.alloc.custom:
        return
    n = g.nr_pages_in_folio
    end = -(-(start + nr_pages) // n) * n
    start -= start % n
    index = start
    failure: ConvFailure | None = None
    changed: list[int] = []  # huge pages this loop split or merged (fixed: the only ones undone)
    while index < end:
        f = g.filemap.lookup(index)
        if f is not None:
            was = f.folio_nr
            try:
                if split:
                    split_folio_in_filemap(g, f, phase)
                else:
                    try_merge_folio_in_filemap(g, f, phase)
            except ConvFailure as e:
                failure = e
                break
            now = g.filemap.lookup(index)
            if now is not None and now.folio_nr != was:
                changed.append(index)
        index += n
    if failure is None:
        return
    undo: Iterable[int] = (_rollback_indices(g, index, start, n) if g.host.revision.rollback_undoes_untouched
                           else reversed(changed))
    for idx in undo:
        f = g.filemap.lookup(idx) if idx < g.nr_pages else None
        if f is None:
            continue
        try:
            if split:
                merge_folio_in_filemap(g, f, "rollback")
            else:
                split_folio_in_filemap(g, f, "rollback")
        except ConvFailure as e:
            g.host.warn("kvm_gmem_restructure_folios_in_range",
                        f"WARN_ON({'merge' if split else 'split'}_folio_in_filemap({idx:#x})): {e}")
    raise failure


def _rollback_indices(g: GuestMemfd, index: int, start: int, n: int) -> Iterator[int]:
    """The indices the rollback loop visits, in order (a generator: the undo of each runs
    before the next index is computed, as in the kernel)."""
    if not g.host.revision.rollback_underflow:
        idx = index
        while idx > start:
            idx -= n
            yield idx
        return
    idx = (index - n) & U64_MASK
    wrapped_steps = 0
    done = 0
    while idx >= start:  # pgoff_t is unsigned: with start == 0 this is always true
        if idx >= g.nr_pages:
            wrapped_steps += 1
            if wrapped_steps >= UNDERFLOW_STEP_LIMIT:
                raise KernelBug(
                    "kvm_gmem_restructure_folios_in_range",
                    f"rollback index underflow: 'for (index -= {n}; index >= start; index -= {n})' "
                    f"on unsigned pgoff_t with start == {start} wrapped index to "
                    f"{(start - n) & U64_MASK:#x}; the loop never terminates (stopped "
                    f"{wrapped_steps} steps past the wrap after {done} in-range undos). "
                    "Acknowledged in diqztt4uhunj.fsf@ackerleytng-ctop.c.googlers.com",
                )
        else:
            done += 1
            yield idx
        idx = (idx - n) & U64_MASK


# --- prealloc: prepare everything before the point of no return, then apply ---------------------
@dataclass
class Plan:
    """What the prealloc revision prepared: splits and merges to apply, resources held."""

    splits: list[FolioRun] = field(default_factory=list)
    merges: list[FolioRun] = field(default_factory=list)
    prepared: list[Block] = field(default_factory=list)  # stash and vmemmap taken for the splits


def prepare_restructure(g: GuestMemfd, work: list[Work], to_shared: bool) -> Plan:
    """Prepare every split (freeze, stash, vmemmap, filemap slots) or merge (freeze, filemap
    slot) the conversion needs; on failure release what was prepared (nothing visible changed)."""
    plan = Plan()
    if not g.alloc.custom:
        return plan
    n = g.nr_pages_in_folio
    huge_starts: list[int] = []
    for w in work:
        s, e = w.start - w.start % n, -(-w.end // n) * n
        for h in range(s, e, n):
            if not huge_starts or huge_starts[-1] != h:
                huge_starts.append(h)
    req_start = work[0].start
    try:
        for h in huge_starts:
            f = g.filemap.lookup(h)
            if f is None:
                continue
            ctx = {"index": h, "phase": "prepare", "folio_order": n.bit_length() - 1}
            if to_shared and f.folio_nr > 1:
                _prepare_freeze(g, f.block, f.start, f.end, f.folio_nr, req_start)
                try:
                    g.alloc.prepare_split(f.block, "prepare")
                except OSError as e:
                    raise _fail(e.errno or ENOMEM, None, explanation(e)) from None
                plan.prepared.append(f.block)
                if (x := P_FILEMAP_ADD.hit(**ctx)) is not None:
                    g.host.note_fault(x)
                    raise _fail(ENOMEM, None, "__kvm_gmem_filemap_add_folio: xarray preallocation failed")
                plan.splits.append(f)
            elif not to_shared and f.folio_nr == 1 and _fully_private_after(g, h, h + n, work):
                if g.filemap.resident(f.block, h, h + n) != [(h, h + n)]:
                    continue  # a piece is missing: leave the range split
                _prepare_freeze(g, f.block, h, h + n, 1, req_start)
                if (x := P_FILEMAP_ADD.hit(**ctx)) is not None:
                    g.host.note_fault(x)
                    raise _fail(ENOMEM, None, "__kvm_gmem_filemap_add_folio: xarray preallocation failed")
                plan.merges.append(FolioRun(h, h + n, f.block, 1))
    except Exception:
        cancel_restructure(g, plan)
        raise
    return plan


def cancel_restructure(g: GuestMemfd, plan: Plan) -> None:
    """Give back what ``prepare_restructure`` prepared (stash, vmemmap) when a later step of a
    ``prealloc`` conversion fails before the point of no return; cannot fail."""
    for block in plan.prepared:
        g.alloc.cancel_split(block)
    plan.prepared.clear()


def _prepare_freeze(g: GuestMemfd, block: Block, start: int, end: int, folio_nr: int, req_start: int) -> None:
    """prealloc: wait for speculative references before the point of no return (EAGAIN)."""
    count = (end - start) // folio_nr
    f = P_REMOVE.hit_many(count, index=start, phase="prepare", folio_order=folio_nr.bit_length() - 1)
    if f is not None:
        g.host.note_fault(f)
        attach_refs(g, block, start + f.offset * folio_nr, f)
    wait_for_refs(g, block, start, end, folio_nr, error_floor=req_start)


def _fully_private_after(g: GuestMemfd, start: int, end: int, work: list[Work]) -> bool:
    covered = [(max(w.start, start), min(w.end, end)) for w in work if w.start < end and w.end > start]
    for s, e, v in g.share.ranges(start, end):
        if v != SHARED:
            continue
        cur = s
        for cs, ce in sorted(covered):
            if cs <= cur < ce:
                cur = ce
        if cur < e:
            return False
    return True


def apply_restructure(g: GuestMemfd, plan: Plan) -> None:
    """After the point of no return: perform the prepared splits and merges (cannot fail)."""
    for f in plan.splits:
        g.filemap.remove(f.start, f.end)
        f.block.split = True  # its stash and vmemmap were taken by prepare_split
        g.filemap.add(f.start, f.end, f.block, 1)
    for f in plan.merges:
        g.filemap.remove(f.start, f.end)
        g.alloc.merge_folio(f.block, "apply")
        g.filemap.add(f.start, f.end, f.block, g.nr_pages_in_folio)
