"""Batch hits (FaultPoint.hit_many): nth landing inside a batch, .offset, when={"index": k}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import faults

P = faults.declare("t_faults_batch_p", {"ENOMEM"}, "per-page loop in a test")
Q = faults.declare("t_faults_batch_q", {"ENOMEM"}, "second per-page loop")


def test_nth_inside_a_batch(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", nth=5) as a:
        f = P.hit_many(8, index=100, phase="forward")
        assert f is not None
        assert (f.offset, f.nth) == (4, 5)
        assert f.context["index"] == 104 and f.context["phase"] == "forward"
        assert a.hits == 5  # items after the failing one were never reached


def test_nth_in_a_later_batch(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", nth=10):
        assert P.hit_many(4, index=0) is None
        assert P.hit_many(4, index=4) is None
        f = P.hit_many(4, index=8)
        assert f is not None and (f.offset, f.nth, f.context["index"]) == (1, 10, 9)


def test_batches_and_single_hits_share_one_count(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", nth=4, times=2):
        assert P.hit() is None
        f = P.hit_many(2, index=0)
        assert f is None
        f = P.hit_many(10, index=0)
        assert f is not None and f.offset == 0 and f.nth == 4
        f = P.hit_many(10, index=1)  # times=2: the very next item fires too
        assert f is not None and f.offset == 0 and f.nth == 5
        assert P.hit_many(10, index=0) is None


def test_every_inside_a_batch(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", nth=3, every=4, times=None):
        offsets = []
        start = 0
        while (f := P.hit_many(20 - start, index=start)) is not None:
            offsets.append(start + f.offset)
            start += f.offset + 1
        assert offsets == [2, 6, 10, 14, 18]


@pytest.mark.parametrize("k", [0, 5, 7])
def test_when_index_inside_a_batch(sc: faults.Scope, k: int) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", when={"index": k}) as a:
        f = P.hit_many(8, index=0)
        assert f is not None and f.offset == k and f.context["index"] == k and f.nth == 1
        assert a.hits == 1


def test_when_index_outside_the_batch_does_not_fire(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", when={"index": 8}) as a:
        assert P.hit_many(8, index=0) is None
        assert P.hit_many(4, index=9) is None
        assert a.hits == 0
        f = P.hit_many(4, index=6)
        assert f is not None and f.offset == 2


def test_when_index_with_a_text_value_never_matches_and_does_not_crash(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", when={"index": "3"}):
        assert P.hit_many(8, index=0) is None


def test_when_other_keys_in_a_batch(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", nth=3, when={"phase": "rollback"}):
        assert P.hit_many(8, index=0, phase="forward") is None
        f = P.hit_many(8, index=0, phase="rollback")
        assert f is not None and f.offset == 2


def test_callable_when_sees_each_item(sc: faults.Scope) -> None:
    seen: list[int] = []

    def pick(ctx: Mapping[str, Any]) -> bool:
        seen.append(ctx["index"])
        return bool(ctx["index"] == 13)

    with faults.inject("t_faults_batch_p", "ENOMEM", when=pick):
        f = P.hit_many(6, index=10)
        assert f is not None and f.offset == 3 and f.context["index"] == 13
    assert seen == [10, 11, 12, 13]  # asked up to the item that fired, as single hits would be


def test_earliest_item_wins_across_armings(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", nth=6), \
            faults.inject("t_faults_batch_p", "ENOMEM", when={"index": 3}) as second:
        f = P.hit_many(10, index=0)
        assert f is not None and f.offset == 3 and f.arming is second


def test_probabilistic_armings_in_a_batch(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", probability=1.0, nth=4):
        f = P.hit_many(10, index=0)
        assert f is not None and f.offset == 3


def test_deterministic_result_does_not_depend_on_another_probabilistic_arming() -> None:
    """The engine has a batch fast path (all deterministic) and an item-by-item path; a
    probability-0 arming forces the second. Both must give the same answers."""

    def run(with_noise: bool) -> list[tuple[int, int, int] | None]:
        out: list[tuple[int, int, int] | None] = []
        with faults.scope(inherit=False):
            faults.inject("t_faults_batch_p", "ENOMEM", nth=3, every=5, times=None)
            faults.inject_chain("t_faults_batch_p", [faults.Term(faults.Off(), 4),
                                                     faults.Term(faults.enomem(), 2)])
            if with_noise:
                faults.inject("t_faults_batch_p", "ENOMEM", probability=0.0, times=None)
            for n in (1, 3, 7, 2, 9, 1, 1, 12):
                f = P.hit_many(n, index=0)
                out.append(None if f is None else (f.offset, f.nth, f.arming.fired))
        return out

    assert run(False) == run(True)
    assert any(r is not None for r in run(False))


def test_zero_or_negative_count_is_no_hit(sc: faults.Scope) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM") as a:
        assert P.hit_many(0) is None
        assert P.hit_many(-3) is None
        assert a.hits == 0


def test_non_integer_index_is_not_shifted_inside_a_batch(sc: faults.Scope) -> None:
    for index in (None, "a"):
        with faults.inject("t_faults_batch_p", "ENOMEM", nth=2):
            f = P.hit_many(3, index=index, phase="x")
            assert f is not None and f.offset == 1 and f.context == {"index": index, "phase": "x"}


@pytest.mark.parametrize("want", [5.0, 1e3])
def test_integral_float_index_filter_matches_in_batches_as_in_single_hits(sc: faults.Scope, want: float) -> None:
    with faults.inject("t_faults_batch_p", "ENOMEM", when={"index": want}):
        f = P.hit_many(2000, index=0)
        assert f is not None and f.offset == int(want)
    with faults.inject("t_faults_batch_p", "ENOMEM", when={"index": want}):
        assert next(i for i in range(2000) if P.hit(index=i) is not None) == int(want)
    with faults.inject("t_faults_batch_p", "ENOMEM", when={"index": 5.5}):
        assert P.hit_many(10, index=0) is None


def test_a_callback_that_applies_nothing_does_not_end_the_batch(sc: faults.Scope) -> None:
    seen: list[int] = []

    def spy(ctx: Mapping[str, Any]) -> None:
        seen.append(ctx["index"])

    faults.inject("t_faults_batch_p", faults.callback(spy), times=3)
    e = faults.inject("t_faults_batch_p", "ENOMEM", nth=4)
    f = P.hit_many(6, index=10)
    assert f is not None and (f.offset, f.context["index"], f.arming, f.nth) == (3, 13, e, 4)
    assert seen == [10, 11, 12]
    assert sc.census["t_faults_batch_p"] == 4
    assert [(t.nth, t.count, t.context["index"], t.fired_offset) for t in sc.trace] == [
        (1, 1, 10, 0), (2, 1, 11, 0), (3, 1, 12, 0), (4, 1, 13, 0)]
    sc.close()


# --- hit_many(n) behaves exactly as n calls of hit() -------------------------------------------
ArmingPlan = tuple[str, object, object, int]


@st.composite
def arming_plans(draw: st.DrawFn) -> ArmingPlan:
    kind = draw(st.sampled_from(["ENOMEM", "spy", "pick"]))  # spy: callback -> None; pick -> EIO
    when: object = draw(st.one_of(st.none(), st.builds(lambda k: {"index": k}, st.integers(0, 12)),
                                  st.sampled_from([{"phase": "a"}, ("mod", 2), ("mod", 3)])))
    if draw(st.booleans()):
        terms = draw(st.lists(st.tuples(st.sampled_from(["off", kind]), st.sampled_from([None, 1, 2, 3]),
                                        st.sampled_from([None, None, 0.5])), min_size=1, max_size=3))
        return ("chain", terms, when, draw(st.integers(0, 999)))
    rule = {"nth": draw(st.sampled_from([None, 1, 2, 3])), "times": draw(st.sampled_from([1, 2, None])),
            "every": draw(st.sampled_from([None, 1, 2, 3])), "skip": draw(st.sampled_from([0, 1, 2])),
            "probability": draw(st.sampled_from([None, None, 0.5])), "kind": kind}
    return ("rule", rule, when, draw(st.integers(0, 999)))


def _run_plans(plans: list[ArmingPlan], calls: list[tuple[int, int, str]], batch: bool) -> list[object]:
    seen: list[tuple[str, int]] = []

    def make(name: str) -> faults.Kind:
        if name == "spy":
            return faults.callback(lambda ctx: seen.append(("spy", ctx["index"])))
        if name == "pick":
            return faults.callback(lambda ctx: seen.append(("pick", ctx["index"])) or faults.errno_kind("EIO"))
        return faults.make_kind(name)

    def when_of(w: object) -> Any:
        if isinstance(w, tuple):
            m = w[1]
            return lambda ctx: seen.append(("when", ctx["index"])) or ctx["index"] % m == 0
        return w

    out: list[object] = []
    with faults.scope(inherit=False, record=True) as sc:
        armings = []
        for plan in plans:
            if plan[0] == "chain":
                terms = [faults.Term(make(k), c, p) for k, c, p in plan[1]]  # type: ignore[attr-defined]
                armings.append(faults.inject_chain("t_faults_batch_r", terms, when=when_of(plan[2]), seed=plan[3]))
            else:
                rule = dict(plan[1])  # type: ignore[call-overload]
                kind = make(rule.pop("kind"))
                armings.append(faults.inject("t_faults_batch_r", kind, when=when_of(plan[2]), seed=plan[3], **rule))
        for n, start, phase in calls:
            res: tuple[int, str, int, int] | None = None
            if batch:
                f = R.hit_many(n, index=start, phase=phase)
                if f is not None:
                    res = (f.offset, f.kind.name, f.nth, armings.index(f.arming))
            else:
                for i in range(n):
                    f = R.hit(index=start + i, phase=phase)
                    if f is not None:
                        res = (i, f.kind.name, f.nth, armings.index(f.arming))
                        break
            out.append((res, [(a.hits, a.fired) for a in armings], sc.census["t_faults_batch_r"]))
        out.append(([f.label() for f in sc.fired], list(seen)))
    return out


R = faults.declare("t_faults_batch_r", {"ENOMEM", "EIO"}, "batch-versus-single property test")


@settings(max_examples=300, deadline=None)
@given(st.lists(arming_plans(), min_size=1, max_size=3),
       st.lists(st.tuples(st.integers(1, 7), st.integers(0, 9), st.sampled_from(["a", "b"])), min_size=1, max_size=7))
def test_hit_many_is_n_single_hits(plans: list[ArmingPlan], calls: list[tuple[int, int, str]]) -> None:
    assert _run_plans(plans, calls, batch=True) == _run_plans(plans, calls, batch=False)
