"""The invariant checker behind ``host.check()`` (MODEL.md's list, numbered as there).

Each check returns readable sentences naming the file, the range and what is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .shareability import PRIVATE, SHARED
from .units import PAGE_SHIFT, PAGES_PER

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd
    from .host import Host
    from .mmu import GMap


def _o(index: int) -> str:
    return f"{index << PAGE_SHIFT:#x}"


def check_file(g: GuestMemfd, name: str) -> list[str]:
    out: list[str] = []
    # 1. folios tile the filemap, aligned, inside the file and inside their block
    prev_end = 0
    for run in g.filemap.all_runs():
        if run.start < prev_end:
            out.append(f"[1 tiling] {name}: folio at {_o(run.start)} overlaps the previous one")
        prev_end = run.end
        if run.end > g.nr_pages:
            out.append(f"[1 tiling] {name}: folio at {_o(run.start)} extends past the file size")
        if run.folio_nr > 1 and (run.start % run.folio_nr or run.end - run.start != run.folio_nr):
            out.append(f"[1 tiling] {name}: huge folio at {_o(run.start)} is misaligned")
        b = run.block
        if run.start < b.base or run.end > b.end:
            out.append(f"[1 tiling] {name}: folio at {_o(run.start)} lies outside its memory block {b!r}")
        if b.huge and run.folio_nr == 1 and not b.split:
            out.append(f"[1 tiling] {name}: 4K folio at {_o(run.start)} of an unsplit huge page")
        if run.folio_nr > 1 and b.split:
            out.append(f"[1 tiling] {name}: huge folio at {_o(run.start)} still has split metadata stashed")
    # 2. a huge range with any shared page is split
    if g.alloc.custom:
        for run in g.filemap.all_runs():
            if run.folio_nr > 1 and g.share.has_any(run.start, run.end, SHARED):
                out.append(f"[2 split] {name}: huge folio at {_o(run.start)} covers a shared page "
                           f"(the host could map a huge page where a shared page lives)")
    # 3. mappings
    for i, m in enumerate(g.mappings):
        for s, e, _ in m.ptes.items():
            for ss, se, v in g.share.ranges(s, e):
                if v != SHARED:
                    out.append(f"[3 host-map] {name}: mapping #{i} maps private pages [{_o(ss)}, {_o(se)})")
            for hs, he in g.filemap.map.gaps(s, e):
                out.append(f"[3 host-map] {name}: mapping #{i} maps unallocated pages [{_o(hs)}, {_o(he)})")
    for s, e, gm in g.guest.ranges():
        want = PRIVATE if gm.private else SHARED
        for ss, se, v in g.share.ranges(s, e):
            if v != want:
                out.append(f"[3 guest-map] {name}: guest maps [{_o(ss)}, {_o(se)}) as {want} but it is {v}")
        if gm.level != "4K" and not _huge_mapping_ok(g, s, e, gm):
            out.append(f"[3 guest-map] {name}: guest maps {gm.level} at {_o(s)} without an unsplit huge folio")
        for hs, he in g.filemap.map.gaps(s, e):
            out.append(f"[3 guest-map] {name}: guest maps unallocated pages [{_o(hs)}, {_o(he)})")
    # 5. references
    for run in g.filemap.all_runs():
        for t in run.block.transient:
            if t.refs < 0:
                out.append(f"[5 refcount] {name}: negative transient references at {_o(t.index)}")
    for p in g.pins:
        for block, _s, _e in p.held:
            if block.freed > block.nr:
                out.append(f"[5 refcount] {name}: pinned block {block!r} freed more pages than it has")
    # 6. contents only where memory exists
    for s, e in g.contents.written_ranges():
        for hs, he in g.filemap.map.gaps(s, e):
            out.append(f"[6 contents] {name}: data recorded for unallocated pages [{_o(hs)}, {_o(he)})")
    # TDX and other arch invariants
    extra = getattr(g.vm, "check_file", None)
    if extra is not None:
        out.extend(extra(g, name))
    return out


def check_host(host: Host) -> list[str]:
    out: list[str] = []
    names = {id(g): f"gmem#{i}" for i, g in enumerate(host.files)}
    for g in host.files:
        out.extend(check_file(g, names[id(g)]))
    for vm in host.vms:  # arch invariants of the VM as a whole (TDX: held folios)
        check_vm = getattr(vm, "check_vm", None)
        if check_vm is not None:
            out.extend(check_vm())
    # 4. HugeTLB accounting: free + in use (incl. waiting to merge) = pool size
    for name, pool in host.pools.items():
        live = [b for b in host.live_blocks if b.nr == pool.nr_pages]
        if pool.free + len(live) != pool.total:
            out.append(f"[4 hugetlb] {name}: free {pool.free} + in use {len(live)} != pool size {pool.total}")
        if pool.free < 0 or pool.resv < 0 or pool.resv > pool.free:
            out.append(f"[4 hugetlb] {name}: counters out of range (free {pool.free}, resv {pool.resv})")
        baseline = host.baseline_stats()[name]
        held = sum(sp.rsv_hpages for sp in pool.subpools)
        if pool.resv != baseline["resv"] + held:
            out.append(f"[4 hugetlb] {name}: resv {pool.resv} != starting {baseline['resv']} + the live subpools' "
                       f"reservations {held} (a reservation was leaked or given back twice)")
        if not host.files and not host.pending_work() and not live and pool.stats() != baseline:
            out.append(f"[4 hugetlb] {name}: all files closed but counters {pool.stats()} != "
                       f"starting values {baseline}")
    # 7. a conversion that failed with ENOMEM / EAGAIN changed nothing (host.check_rollback)
    for text in host.rollback_failures:
        out.append(f"[7 rollback] {text}")
    # 8. an operation that reported success did what it promises (punch hole: zeros, no folio)
    for text in host.contract_failures:
        out.append(f"[8 punch] {text}")
    # 5. nothing lost: every huge page in use is reachable (filemap, pin) or waiting to merge
    for b in sorted(host.live_blocks, key=lambda b: b.id):
        owner = b.owner
        resident = owner.filemap.resident(b, b.base, b.end) if getattr(owner, "alive", False) else []  # type: ignore[attr-defined]
        held = sum(e - s for s, e in resident)
        pinned = sum(e - s for s, e in b.pinned(b.base, b.end))
        waiting = sum(1 for w in host.pending_work() if f"#{b.id}(" in w)
        if held + pinned + b.freed < b.nr and not waiting:
            lost = b.nr - held - pinned - b.freed
            out.append(f"[5 refcount] huge page {b!r}: {lost} page(s) neither in a filemap, pinned nor "
                       f"freed (leaked: a folio lost from the filemap)")
    return out


def _huge_mapping_ok(g: GuestMemfd, start: int, end: int, gm: GMap) -> bool:
    """A huge guest mapping is one unsplit huge folio exactly; where the arch caps private
    levels (TDX, 2M), a private entry is an aligned 2M of one huge page's memory, which it may
    keep after the folio was split (the TDX module maps memory, not folios)."""
    f = g.filemap.lookup(start)
    if f is None:
        return False
    if f.folio_nr > 1 and (f.start, f.end) == (start, end):
        return True
    if g.vm.max_private_level is None or not gm.private:
        return False
    runs = list(g.filemap.runs(start, end))
    return (end - start == PAGES_PER[gm.level] and (start - f.block.base) % (end - start) == 0
            and all(r.block is f.block for r in runs))
