"""Batch hits (FaultPoint.hit_many): nth landing inside a batch, .offset, when={"index": k}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

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
    assert seen[:6] == [10, 11, 12, 13, 14, 15]


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
