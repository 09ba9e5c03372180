"""A run-length interval map over page indices (the model's memory grows with ranges, not pages).

``IntervalMap`` stores disjoint half-open ``[start, end)`` intervals, each with a value; holes
have no value. ``assign`` coalesces with equal neighbours, like the kernel's
``kvm_gmem_shareability_store`` does for the maple tree.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


def _equal(a: object, b: object) -> bool:
    return a == b


class IntervalMap(Generic[V]):
    """Disjoint ``[start, end) -> value`` intervals: a sorted list of starts (searched with the C
    ``bisect``) and a dict ``start -> (end, value)``. A model's maps hold up to tens of thousands
    of intervals (``benchmarks/bench_model.py``: 20,000 after 10,000 scattered conversions of a
    1 TiB guest), where inserting into a plain list (a ``memmove``) costs less than a balanced
    structure's bookkeeping in Python; and two builtins copy and pickle at C speed, which a
    sweep does once per scenario."""

    __slots__ = ("_ends", "_mergeable", "_starts")

    def __init__(self, mergeable: Callable[[V, V], bool] | None = None) -> None:
        self._starts: list[int] = []
        self._ends: dict[int, tuple[int, V]] = {}  # start -> (end, value)
        self._mergeable = mergeable or _equal

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def copy(self) -> IntervalMap[V]:
        other: IntervalMap[V] = IntervalMap(self._mergeable)
        other._starts = self._starts.copy()
        other._ends = self._ends.copy()
        return other

    # --- queries ----------------------------------------------------------------------------
    def find(self, index: int) -> tuple[int, int, V] | None:
        """The interval containing ``index``, or None for a hole."""
        pos = bisect_right(self._starts, index) - 1
        if pos < 0:
            return None
        start = self._starts[pos]
        end, value = self._ends[start]
        return (start, end, value) if index < end else None

    def get(self, index: int, default: V | None = None) -> V | None:
        hit = self.find(index)
        return default if hit is None else hit[2]

    def items(self, start: int | None = None, end: int | None = None,
              clip: bool = True) -> Iterator[tuple[int, int, V]]:
        """Intervals overlapping ``[start, end)`` in order, clipped to it unless ``clip=False``."""
        starts, ends = self._starts, self._ends
        if start is not None and end is not None and end <= start:
            return  # an empty range overlaps nothing (not even an interval around it)
        if start is None:
            for s in starts.copy():
                e, v = ends[s]
                yield s, e, v
            return
        lo = max(bisect_right(starts, start) - 1, 0)
        hi = bisect_left(starts, end) if end is not None else len(starts)
        # a snapshot: callers may change the map while they walk what they got
        snapshot = [(s, *ends[s]) for s in starts[lo:hi]]
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
            self._ends[s] = (at, v)
            self._set(at, e, v)

    def _set(self, start: int, end: int, value: V) -> None:
        if start not in self._ends:
            insort(self._starts, start)
        self._ends[start] = (end, value)

    def _delete(self, start: int) -> None:
        del self._ends[start]
        del self._starts[bisect_left(self._starts, start)]

    def clear(self, start: int, end: int) -> None:
        """Remove values in ``[start, end)``."""
        if start >= end:
            return
        self._cut(start)
        self._cut(end)
        starts = self._starts
        lo, hi = bisect_left(starts, start), bisect_left(starts, end)
        if lo < hi:
            ends = self._ends
            for s in starts[lo:hi]:
                del ends[s]
            del starts[lo:hi]

    def assign(self, start: int, end: int, value: V) -> None:
        """Set ``[start, end)`` to ``value``, coalescing with equal neighbours."""
        if start >= end:
            return
        self.clear(start, end)
        merge = self._mergeable
        left = self.find(start - 1) if start > 0 else None
        if left is not None and left[1] == start and merge(left[2], value):
            start = left[0]
            self._delete(start)
        right = self._ends.get(end)
        if right is not None and merge(value, right[1]):
            self._delete(end)
            end = right[0]
        self._set(start, end, value)

    def put(self, start: int, end: int, value: V) -> None:
        """Set ``[start, end)`` to ``value`` without coalescing (distinct objects, e.g. folios)."""
        if start >= end:
            return
        self.clear(start, end)
        self._set(start, end, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntervalMap) and list(self.items()) == list(other.items())

    def __repr__(self) -> str:
        return "IntervalMap(" + ", ".join(f"[{s:#x},{e:#x})={v!r}" for s, e, v in self.items()) + ")"
