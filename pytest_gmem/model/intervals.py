"""A run-length interval map over page indices (the model's memory grows with ranges, not pages).

``IntervalMap`` stores disjoint half-open ``[start, end)`` intervals, each with a value; holes
have no value. ``assign`` coalesces with equal neighbours, like the kernel's
``kvm_gmem_shareability_store`` does for the maple tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sortedcontainers import SortedDict

V = TypeVar("V")


def _equal(a: object, b: object) -> bool:
    return a == b


class IntervalMap(Generic[V]):
    """Disjoint ``[start, end) -> value`` intervals, kept in a ``SortedDict`` keyed by start."""

    __slots__ = ("_d", "_mergeable")

    def __init__(self, mergeable: Callable[[V, V], bool] | None = None) -> None:
        self._d: SortedDict = SortedDict()  # start -> (end, value)
        self._mergeable = mergeable or _equal

    def __len__(self) -> int:
        return len(self._d)

    def __bool__(self) -> bool:
        return bool(self._d)

    def copy(self) -> IntervalMap[V]:
        other: IntervalMap[V] = IntervalMap(self._mergeable)
        other._d = self._d.copy()
        return other

    # --- queries ----------------------------------------------------------------------------
    def find(self, index: int) -> tuple[int, int, V] | None:
        """The interval containing ``index``, or None for a hole."""
        d = self._d
        pos = d.bisect_right(index) - 1
        if pos < 0:
            return None
        start = d.keys()[pos]
        end, value = d[start]
        return (start, end, value) if index < end else None

    def get(self, index: int, default: V | None = None) -> V | None:
        hit = self.find(index)
        return default if hit is None else hit[2]

    def items(self, start: int | None = None, end: int | None = None,
              clip: bool = True) -> Iterator[tuple[int, int, V]]:
        """Intervals overlapping ``[start, end)`` in order, clipped to it unless ``clip=False``."""
        d = self._d
        if start is not None and end is not None and end <= start:
            return  # an empty range overlaps nothing (not even an interval around it)
        if start is None:
            for s in list(d.keys()):
                e, v = d[s]
                yield s, e, v
            return
        pos = d.bisect_right(start) - 1
        first = d.keys()[pos] if pos >= 0 else start
        # a snapshot: callers may change the map while they walk what they got
        keys = d.irange(first, end, inclusive=(True, False)) if end is not None else d.irange(first)
        snapshot = [(s, *d[s]) for s in keys]
        for s, e, v in snapshot:
            if e <= start:
                continue
            if clip:
                yield max(s, start), e if end is None else min(e, end), v
            else:
                yield s, e, v

    def gaps(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Holes within ``[start, end)``."""
        cur = start
        for s, e, _ in self.items(start, end):
            if s > cur:
                yield cur, s
            cur = e
        if cur < end:
            yield cur, end

    def covered(self, start: int, end: int) -> int:
        """Number of indices in ``[start, end)`` that have a value."""
        return sum(e - s for s, e, _ in self.items(start, end))

    # --- updates ----------------------------------------------------------------------------
    def _cut(self, at: int) -> None:
        """Make ``at`` an interval boundary if it falls inside an interval."""
        hit = self.find(at)
        if hit is not None and hit[0] < at:
            s, e, v = hit
            self._d[s] = (at, v)
            self._d[at] = (e, v)

    def clear(self, start: int, end: int) -> None:
        """Remove values in ``[start, end)``."""
        if start >= end:
            return
        self._cut(start)
        self._cut(end)
        d = self._d
        for s in list(d.irange(start, end, inclusive=(True, False))):
            del d[s]

    def assign(self, start: int, end: int, value: V) -> None:
        """Set ``[start, end)`` to ``value``, coalescing with equal neighbours."""
        if start >= end:
            return
        self.clear(start, end)
        d = self._d
        merge = self._mergeable
        left = self.find(start - 1) if start > 0 else None
        if left is not None and left[1] == start and merge(left[2], value):
            start = left[0]
            del d[start]
        right = d.get(end)
        if right is not None and merge(value, right[1]):
            del d[end]
            end = right[0]
        d[start] = (end, value)

    def put(self, start: int, end: int, value: V) -> None:
        """Set ``[start, end)`` to ``value`` without coalescing (distinct objects, e.g. folios)."""
        if start >= end:
            return
        self.clear(start, end)
        self._d[start] = (end, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntervalMap) and list(self.items()) == list(other.items())

    def __repr__(self) -> str:
        return "IntervalMap(" + ", ".join(f"[{s:#x},{e:#x})={v!r}" for s, e, v in self.items()) + ")"
