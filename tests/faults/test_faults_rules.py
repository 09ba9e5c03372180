"""Keyword arming rules (faults.inject): nth, times, every, skip, probability, when, globs."""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any

import pytest

import faults

A = faults.declare("t_faults_rules_a", {"ENOMEM", "EAGAIN"}, "test point a")
B = faults.declare("t_faults_rules_b", {"ENOMEM"}, "test point b")
C = faults.declare("t_faults_rules_c", {"ENOMEM"}, "test point c")


def fired_hits(point: faults.FaultPoint, n: int, **ctx: Any) -> list[int]:
    """1-based numbers of the hits (out of n) that fired."""
    return [i for i in range(1, n + 1) if point.hit(**ctx) is not None]


def test_idle_hit_returns_none() -> None:
    assert A.hit(index=0) is None
    assert A.hit_many(10, index=0) is None


def test_default_fires_on_first_hit_once(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", "ENOMEM"):
        assert fired_hits(A, 5) == [1]


@pytest.mark.parametrize("nth", [1, 2, 5])
def test_nth(sc: faults.Scope, nth: int) -> None:
    with faults.inject("t_faults_rules_a", faults.enomem(), nth=nth):
        assert fired_hits(A, 8) == [nth]


def test_nth_counts_from_arming(sc: faults.Scope) -> None:
    for _ in range(3):
        A.hit()
    with faults.inject("t_faults_rules_a", "ENOMEM", nth=2):
        assert fired_hits(A, 4) == [2]


def test_times_and_unlimited(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", "ENOMEM", nth=2, times=3):
        assert fired_hits(A, 8) == [2, 3, 4]
    with faults.inject("t_faults_rules_a", "ENOMEM", times=None):
        assert fired_hits(A, 4) == [1, 2, 3, 4]


def test_every(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", "ENOMEM", nth=2, every=3, times=None):
        assert fired_hits(A, 12) == [2, 5, 8, 11]


def test_skip(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", "ENOMEM", skip=3, times=2):
        assert fired_hits(A, 8) == [4, 5]


def test_fired_value(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", faults.errno_kind("eagain"), nth=2) as arming:
        assert A.hit(index=7) is None
        f = A.hit(index=8, phase="forward")
        assert f is not None
        assert (f.point, f.kind, f.nth, f.offset) == ("t_faults_rules_a", faults.Errno("EAGAIN"), 2, 0)
        assert isinstance(f.kind, faults.Errno) and f.kind.errno == errno.EAGAIN
        assert dict(f.context) == {"index": 8, "phase": "forward"}
        assert f.arming is arming and f.label() == "t_faults_rules_a:EAGAIN#2"
        assert (arming.hits, arming.fired) == (2, 1)


def _fire_pattern(seed: int, n: int = 200) -> list[int]:
    with faults.scope(inherit=False), faults.inject(
        "t_faults_rules_a", "ENOMEM", probability=0.3, times=None, seed=seed
    ):
        return fired_hits(A, n)


def test_probability_is_seeded_and_reproducible() -> None:
    first = _fire_pattern(7)
    assert first == _fire_pattern(7)
    assert first != _fire_pattern(8)
    # 200 trials at p=0.3: far outside [30, 90] would mean the probability is ignored.
    assert 30 <= len(first) <= 90


def test_probability_extremes(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", "ENOMEM", probability=0.0, times=None):
        assert fired_hits(A, 50) == []
    with faults.inject("t_faults_rules_a", "ENOMEM", probability=1.0, times=None):
        assert fired_hits(A, 5) == [1, 2, 3, 4, 5]


def test_scope_seed_makes_unseeded_armings_reproducible() -> None:
    def run() -> tuple[list[int], int]:
        with faults.scope(inherit=False, seed=99):
            with faults.inject("t_faults_rules_a", "ENOMEM", probability=0.5, times=None) as a:
                return fired_hits(A, 64), a.seed

    (p1, s1), (p2, s2) = run(), run()
    assert (p1, s1) == (p2, s2)


def test_when_mapping_filters_and_counts_only_matching_hits(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", "ENOMEM", nth=2, when={"phase": "rollback"}) as a:
        assert A.hit(phase="forward") is None
        assert A.hit(phase="rollback") is None
        assert A.hit(phase="forward") is None
        f = A.hit(phase="rollback", index=3)
        assert f is not None and f.nth == 2
        assert a.hits == 2  # non-matching hits are not counted


def test_when_callable(sc: faults.Scope) -> None:
    def odd(ctx: Mapping[str, Any]) -> bool:
        return bool(ctx.get("index", 0) % 2)

    with faults.inject("t_faults_rules_a", "ENOMEM", times=None, when=odd):
        assert [i for i in range(6) if A.hit(index=i)] == [1, 3, 5]


def test_when_must_be_mapping_or_callable(sc: faults.Scope) -> None:
    with pytest.raises(faults.FaultError, match="mapping or a callable"):
        faults.inject("t_faults_rules_a", "ENOMEM", when=3)  # type: ignore[arg-type]


def test_glob_arms_every_matching_point_with_one_counter(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_[bc]", "ENOMEM", nth=3) as a:
        assert a.points == {"t_faults_rules_b", "t_faults_rules_c"}
        assert B.hit() is None and C.hit() is None
        f = B.hit()
        assert f is not None and f.point == "t_faults_rules_b"
        assert C.hit() is None


def test_glob_skips_points_that_cannot_produce_the_kind(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_*", "EAGAIN", times=None) as a:
        assert a.points == {"t_faults_rules_a"}
        assert B.hit() is None
        assert A.hit() is not None


def test_several_armings_at_once(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", "ENOMEM", nth=2), \
            faults.inject("t_faults_rules_a", "EAGAIN", nth=4), \
            faults.inject("t_faults_rules_b", "ENOMEM", nth=1):
        kinds = [getattr(A.hit(), "kind", None) for _ in range(5)]
        assert kinds == [None, faults.Errno("ENOMEM"), None, faults.Errno("EAGAIN"), None]
        assert B.hit() is not None


def test_the_earlier_arming_wins_a_shared_hit_and_both_count_it(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", "ENOMEM") as first, \
            faults.inject("t_faults_rules_a", "EAGAIN") as second:
        f1, f2 = A.hit(), A.hit()
        assert f1 is not None and f1.kind == faults.Errno("ENOMEM")
        assert f2 is not None and f2.kind == faults.Errno("EAGAIN")
        assert (first.hits, second.hits) == (2, 2)


def test_the_earlier_arming_wins_also_when_it_is_in_an_outer_scope(sc: faults.Scope) -> None:
    with faults.inject("t_faults_rules_a", "ENOMEM") as outer, faults.scope():
        inner = faults.inject("t_faults_rules_a", "EAGAIN")
        f1, f2 = A.hit(), A.hit()
        assert f1 is not None and f1.arming is outer and f1.kind == faults.Errno("ENOMEM")
        assert f2 is not None and f2.arming is inner and f2.kind == faults.Errno("EAGAIN")
    with faults.inject("t_faults_rules_a", "ENOMEM") as outer, faults.scope():
        inner = faults.inject("t_faults_rules_a", "EAGAIN")
        f1, f2 = A.hit_many(3), A.hit_many(3)  # the same in batches
        assert f1 is not None and f1.arming is outer and f1.offset == 0
        assert f2 is not None and f2.arming is inner and f2.offset == 0


def test_disarm_stops_firing(sc: faults.Scope) -> None:
    a = faults.inject("t_faults_rules_a", "ENOMEM", times=None)
    assert A.hit() is not None
    a.disarm()
    a.disarm()  # idempotent
    assert A.hit() is None
    assert not a.live


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nth": 0}, "nth must be an integer >= 1"),
        ({"times": 0}, "times must be an integer >= 1"),
        ({"every": 0}, "every must be an integer >= 1"),
        ({"skip": -1}, "skip must be an integer >= 0"),
        ({"nth": True}, "nth must be an integer"),
        ({"probability": 1.5}, "probability must be a number between 0 and 1"),
        ({"probability": "0.5"}, "probability must be a number between 0 and 1, got '0.5'"),
        ({"probability": True}, "probability must be a number between 0 and 1, got True"),
        ({"probability": float("nan")}, "probability must be a number between 0 and 1"),
    ],
)
def test_bad_rule_values(sc: faults.Scope, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(faults.FaultError, match=message):
        faults.inject("t_faults_rules_a", "ENOMEM", **kwargs)
