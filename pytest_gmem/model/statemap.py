"""A compact text picture of the model's state, for failure reports.

One block per file: shareability ranges, folio runs (with refcounts beyond the filemap's),
host mappings, pins and guest mappings, each as byte ranges; then the pools and the WARN log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .units import PAGE_SHIFT, fmt_bytes

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd
    from .host import Host

MAX_LINES = 12


def _r(s: int, e: int) -> str:
    return f"[{s << PAGE_SHIFT:#x}, {e << PAGE_SHIFT:#x})"


def _cap(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[: MAX_LINES - 1], f"    ... {len(lines) - MAX_LINES + 1} more"]


def render_file(g: GuestMemfd, name: str) -> list[str]:
    out = [f"{name}: size {fmt_bytes(g.size)}, {g.page_size} pages, vm {g.vm.vm_type}"
           f"{'' if g.fd_open else ', fd closed'}"]
    out.append("  shareability: " + " ".join(f"{_r(s, e)}={v[0].upper()}" for s, e, v in g.share.ranges()[:16]))
    folios = []
    for run in g.filemap.all_runs():
        kind = "huge" if run.folio_nr > 1 else "4K x" + str(run.end - run.start)
        pins = run.block.pin_refs(run.start, run.end)
        trans = sum(t.refs for t in run.block.transient if run.start <= t.index < run.end)
        extra = (f" pins+{pins}" if pins else "") + (f" transient+{trans}" if trans else "")
        folios.append(f"    {_r(run.start, run.end)} {kind} block#{run.block.id}{extra}")
    out.append(f"  folios ({g.filemap.nr_runs()} runs):")
    out.extend(_cap(folios) or ["    (none)"])
    for i, m in enumerate(g.mappings):
        ptes = " ".join(_r(s, e) for s, e, _ in m.ptes.items())
        out.append(f"  host mapping #{i}: " + (ptes or "(no PTEs)"))
    for p in g.pins:
        out.append(f"  pin {_r(p.start, p.end)}")
    guest = [f"{_r(s, e)}={m.level}{'P' if m.private else 'S'}" for s, e, m in g.guest.ranges()]
    out.append("  guest: " + (" ".join(guest[:16]) or "(unmapped)"))
    render_extra = getattr(g.vm, "render_file", None)
    if render_extra is not None:
        out.extend(render_extra(g))
    return out


def render_host(host: Host) -> str:
    out = [f"host: revision {host.revision.name}"]
    for name, p in host.pools.items():
        out.append(f"  hugetlb {name}: total {p.total} free {p.free} resv {p.resv}")
    if host.memory_pages is not None or host.mem_used:
        out.append(f"  memory: {host.mem_used} 4K pages in use" +
                   (f" of {host.memory_pages}" if host.memory_pages is not None else ""))
    if host.pending_work():
        out.append(f"  deferred work: {len(host.pending_work())} item(s)")
    for i, g in enumerate(host.files):
        out.extend(render_file(g, f"gmem#{i}"))
    if host.warnings:
        out.append("  WARN log:")
        out.extend(f"    {w}" for w in host.warnings[-8:])
    return "\n".join(out)
