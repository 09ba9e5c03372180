"""``gmem.snapshot()``: the file's own state as a comparable value with a readable diff.

Page-table mappings are left out (a failed conversion may leave pages unmapped), and so are
transient references injected by a fault (they end when the arming ends).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, NamedTuple

from .contents import digest_items
from .units import PAGE_SHIFT

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd


@dataclass(frozen=True)
class Snapshot:
    """ranges: (start, end, shareability) in bytes; folios: (offset, count, nr_pages, refcount)
    runs; contents: digest per written range; allocator: subpool and pool counters."""

    ranges: tuple[tuple[int, int, str], ...]
    folios: tuple[tuple[int, int, int, int], ...]
    contents: tuple[tuple[int, int, str], ...]
    allocator: tuple[tuple[str, int], ...]

    def diff(self, other: Snapshot) -> list[str]:
        """Readable differences, field by field (empty when equal)."""
        lines: list[str] = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a == b:
                continue
            lines.append(f"{f.name} differ:")
            sa, sb = set(a), set(b)
            for item in sorted(sa - sb):
                lines.append(f"  - {_fmt(f.name, item)}")
            for item in sorted(sb - sa):
                lines.append(f"  + {_fmt(f.name, item)}")
        return lines

    def render(self) -> str:
        out = ["ranges:"] + [f"  {_fmt('ranges', r)}" for r in self.ranges]
        out += ["folios:"] + [f"  {_fmt('folios', r)}" for r in self.folios]
        out += ["contents:"] + [f"  {_fmt('contents', r)}" for r in self.contents]
        out += ["allocator:"] + [f"  {k}={v}" for k, v in self.allocator]
        return "\n".join(out)


def _fmt(kind: str, item: tuple[object, ...]) -> str:
    if kind == "ranges":
        s, e, v = item
        return f"[{s:#x}, {e:#x}) {v}"
    if kind == "folios":
        off, count, nr, refs = item
        return f"{count} x {nr}-page folio(s) from {off:#x}, refcount {refs}"
    if kind == "contents":
        s, e, d = item
        return f"data [{s:#x}, {e:#x}) digest {d}"
    return repr(item)


def take(g: GuestMemfd, window: tuple[int, int] | None = None) -> Snapshot:
    """The snapshot of the whole file, or of the pages ``window`` (start, end indices) only:
    ranges, folios, contents, allocated and split huge pages there, the subpool's counters
    whole. What a conversion can change lies in its range rounded out to huge pages, so the
    rollback check (``Host(check_rollback=True)``) compares that window: O(ranges in it)."""
    return from_image(capture(g, window))


class Image(NamedTuple):
    """What :func:`capture` returns: the window's state as the model holds it, not yet merged or
    hashed (page indices; content runs by value, which are ints or bytes: immutable)."""

    ranges: tuple[tuple[int, int, str], ...]
    folios: tuple[tuple[int, int, int, int], ...]
    contents: tuple[tuple[int, int, int | bytes], ...]
    allocated: int
    counters: tuple[int, int, int] | None  # subpool used, reserved, split huge pages


def capture(g: GuestMemfd, window: tuple[int, int] | None = None) -> Image:
    """The raw state of ``window`` (default: the whole file), cheap to take and to compare: the
    rollback check takes one before every conversion and builds :class:`Snapshot` values (merged
    folio runs, content digests) only when the conversion failed and the two images differ."""
    lo, hi = window if window is not None else (0, g.nr_pages)
    folios, split = _folio_runs(g, lo, hi)
    contents = tuple(g.contents.pages.items(lo, hi))  # values are ints or bytes: immutable
    allocated = sum(e - s for s, e, _ in g.filemap.map.items(lo, hi))
    spool = getattr(g.alloc, "spool", None)
    counters = (spool.used_hpages, spool.rsv_hpages, split) if spool is not None else None
    return Image(tuple(g.share.ranges(lo, hi)), folios, contents, allocated, counters)


def from_image(image: Image) -> Snapshot:
    """The :class:`Snapshot` of a :func:`capture` (folio runs merged, contents digested)."""
    ranges, folios, contents, allocated, counters = image
    merged: list[tuple[int, int, int, int]] = []
    for off, count, nr, refs in folios:
        if merged:
            po, pc, pn, pr = merged[-1]
            if pn == nr and pr == refs and po + (pc * nr << PAGE_SHIFT) == off:
                merged[-1] = (po, pc + count, pn, pr)
                continue
        merged.append((off, count, nr, refs))
    digests = tuple((s << PAGE_SHIFT, e << PAGE_SHIFT, digest_items([(s, e, v)]))
                    for s, e, v in contents)
    alloc: list[tuple[str, int]] = [("allocated_pages", allocated)]
    if counters is not None:
        used, rsv, split = counters
        alloc += [("subpool_used", used), ("subpool_rsv", rsv), ("split_huge_pages", split)]
    shares = tuple((a << PAGE_SHIFT, b << PAGE_SHIFT, v) for a, b, v in ranges)
    return Snapshot(shares, tuple(merged), digests, tuple(alloc))


def _folio_runs(g: GuestMemfd, lo: int, hi: int) -> tuple[tuple[tuple[int, int, int, int], ...], int]:
    """(offset, count, nr_pages, refcount) per run of equal folios in ``[lo, hi)``, pins
    counted, transient references not; and how many split huge pages start there. Grows with the
    number of distinct runs, not with pages."""
    out: list[tuple[int, int, int, int]] = []
    split = 0
    for run in g.filemap.runs(lo, hi):
        n = run.folio_nr
        split += run.block.split and run.start == run.block.base
        for a, b, refs in run.block.ref_runs(run.start, run.end, n, transient=False):
            out.append((a << PAGE_SHIFT, (b - a) // n, n, refs))
    return tuple(out), split
