"""``IntervalMap`` against a page-by-page dict: every query agrees after any run of updates, the
intervals stay sorted and disjoint, ``assign`` leaves no two equal neighbours, and a copy or a
pickle is independent of the original."""

from __future__ import annotations

import itertools
import pickle

from hypothesis import given
from hypothesis import strategies as st

from pytest_gmem.model.intervals import IntervalMap

SPAN = 64
Op = tuple[str, int, int, int]
ops = st.lists(st.tuples(st.sampled_from(["assign", "put", "clear"]), st.integers(0, SPAN),
                         st.integers(0, SPAN), st.integers(0, 2)), max_size=40)


def apply(m: IntervalMap[int], ref: dict[int, int], op: Op) -> None:
    name, a, b, value = op
    lo, hi = min(a, b), max(a, b)
    if name == "clear":
        m.clear(lo, hi)
        for i in range(lo, hi):
            ref.pop(i, None)
    else:
        getattr(m, name)(lo, hi, value)
        ref.update(dict.fromkeys(range(lo, hi), value))


def check(m: IntervalMap[int], ref: dict[int, int], coalesced: bool) -> None:
    got = list(m.items())
    for (s1, e1, v1), (s2, _e2, v2) in itertools.pairwise(got):
        assert s1 < e1 <= s2, got
        assert not (coalesced and e1 == s2 and v1 == v2), f"equal neighbours not merged: {got}"
    assert {i: v for s, e, v in got for i in range(s, e)} == ref
    assert len(m) == len(got) and bool(m) == bool(got)
    for i in range(-1, SPAN + 2):
        assert m.get(i) == ref.get(i)
    for lo in range(0, SPAN + 1, 7):
        for hi in range(lo, SPAN + 2, 5):
            clipped = [(s, e, v) for s, e, v in m.items(lo, hi)]
            assert {i: v for s, e, v in clipped for i in range(s, e)} == {
                i: v for i, v in ref.items() if lo <= i < hi}
            assert all(lo <= s < e <= hi for s, e, _ in clipped)
            assert m.covered(lo, hi) == sum(1 for i in ref if lo <= i < hi)
            holes = {i for s, e in m.gaps(lo, hi) for i in range(s, e)} if hi > lo else set()
            assert holes == {i for i in range(lo, hi) if i not in ref}


@given(ops)
def test_interval_map_agrees_with_a_page_by_page_dict(seq: list[Op]) -> None:
    m: IntervalMap[int] = IntervalMap()
    ref: dict[int, int] = {}
    for op in seq:
        apply(m, ref, op)
        check(m, ref, coalesced=all(o[0] != "put" for o in seq))


@given(ops, ops)
def test_copies_and_pickles_are_independent(first: list[Op], then: list[Op]) -> None:
    m: IntervalMap[int] = IntervalMap()
    ref: dict[int, int] = {}
    for op in first:
        apply(m, ref, op)
    copy, unpickled = m.copy(), pickle.loads(pickle.dumps(m))
    assert copy == m and unpickled == m
    before = list(m.items())
    other = dict(ref)
    for op in then:
        apply(copy, other, op)
        apply(unpickled, dict(ref), op)
    assert list(m.items()) == before
    assert copy == unpickled
    check(copy, other, coalesced=all(o[0] != "put" for o in [*first, *then]))


def test_walking_a_map_while_changing_it_sees_the_snapshot() -> None:
    m: IntervalMap[str] = IntervalMap()
    m.put(0, 4, "a")
    m.put(4, 8, "b")
    seen = []
    for s, e, v in m.items(0, 8):
        m.clear(s, e)
        seen.append((s, e, v))
    assert seen == [(0, 4, "a"), (4, 8, "b")] and not m
