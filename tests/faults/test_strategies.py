"""faults.strategies.schedules() and the Schedule value: what is drawn, how it shrinks, how it
reads as text, and that an example's faults end with the example."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample
from hypothesis.reporting import with_reporter

import faults
from faults import Schedule
from faults.strategies import schedules

A = faults.declare("t_strategies_a", {"ENOMEM", "EAGAIN"}, "a point with two errnos")
B = faults.declare("t_strategies_b", {"speculative_refcount", "tdx_error"}, "a point with parameterised kinds")
C = faults.declare("t_strategies_c", {"ENOMEM"}, "another ENOMEM point")

POINTS = ["t_strategies_*"]
QUICK = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(schedules(points=POINTS, max_faults=4, max_nth=6, filters={"phase": ["forward", "rollback"]}))
def test_a_schedule_is_its_text(schedule: Schedule) -> None:
    assert faults.parse(schedule.text()) == list(schedule.armings)
    assert Schedule(schedule.text()) == schedule
    assert eval(repr(schedule), {"Schedule": Schedule}) == schedule
    assert schedule.option() == "--gmem-fault " + (f"'{schedule.text()}'" if schedule.text() else "''")
    assert len(schedule) <= 4
    for spec in schedule.armings:
        point = faults.get_point(spec.pattern)
        assert point.allows(spec.kind)
        assert spec.rule is not None and spec.rule.times == 1 and 1 <= (spec.rule.nth or 0) <= 6
        assert spec.when in ((), (("phase", "forward"),), (("phase", "rollback"),))
    assert len(set(schedule.armings)) == len(schedule)


def drawn_armings(strategy: st.SearchStrategy[Schedule], n: int = 200) -> set[str]:
    """The armings (text before '@') of ``n`` drawn schedules."""
    seen: set[str] = set()

    def collect(s: Schedule) -> bool:
        seen.update(faults.format_spec(a).split("@")[0] for a in s.armings)
        return False

    with pytest.raises(NoSuchExample):
        find(strategy, collect, settings=settings(max_examples=n, database=None, phases=[Phase.generate]))
    return seen


def test_default_kinds_are_each_points_allow_list() -> None:
    assert drawn_armings(schedules(points=POINTS)) == {
        "t_strategies_a=ENOMEM", "t_strategies_a=EAGAIN", "t_strategies_c=ENOMEM",
        "t_strategies_b=speculative_refcount", "t_strategies_b=tdx_error",
        "t_strategies_b=tdx_error(code=TDX_SW_ERROR)",
    }


def test_explicit_kinds_go_only_to_points_that_can_produce_them() -> None:
    drawn = drawn_armings(schedules(points=POINTS, kinds=["enomem", "speculative_refcount(hold=3)"]))
    assert drawn == {"t_strategies_a=ENOMEM", "t_strategies_c=ENOMEM", "t_strategies_b=speculative_refcount(hold=3)"}


def test_it_shrinks_to_fewer_and_earlier_faults() -> None:
    # Any schedule with two armings will do: the shrinker finds the smallest one.
    smallest = find(schedules(points=POINTS, max_faults=4, max_nth=9), lambda s: len(s) >= 2,
                    settings=settings(database=None))
    # Two local minima (the armings of a schedule are distinct): both are the earliest faults.
    assert smallest.text() in ("t_strategies_a=EAGAIN@nth=1;t_strategies_a=EAGAIN@nth=2",
                               "t_strategies_a=EAGAIN@nth=1;t_strategies_c=ENOMEM@nth=1")
    at_b = find(schedules(points=POINTS, max_nth=9), lambda s: any(a.pattern == "t_strategies_b" for a in s.armings),
                settings=settings(database=None))
    assert at_b.text() == "t_strategies_b=speculative_refcount@nth=1"
    assert find(schedules(points=POINTS), lambda s: True, settings=settings(database=None)) == Schedule("")


def test_min_faults_and_a_single_point() -> None:
    with pytest.raises(NoSuchExample):
        find(schedules(points="t_strategies_c", min_faults=1, max_faults=1), lambda s: len(s) != 1,
             settings=settings(database=None, max_examples=50))


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"points": "t_strategies_x"}, faults.UnknownPoint, "did you mean 't_strategies_"),
    ({"points": "t_nothing_*"}, faults.UnknownPoint, "matches no fault point"),
    ({"points": "t_strategies_b", "kinds": ["ENOMEM"]}, faults.KindNotAllowed, "cannot produce 'ENOMEM'"),
    ({"points": "t_strategies_*", "kinds": ["EIO"]}, faults.KindNotAllowed, "can produce EIO"),
    ({"points": POINTS, "kinds": ["enomen"]}, faults.UnknownKind, "did you mean 'ENOMEM'"),
    ({"points": POINTS, "kinds": ["2*enomem"]}, faults.FaultError, "one kind per item"),
    ({"points": POINTS, "kinds": ["off"]}, faults.FaultError, "kinds that fire"),
    ({"points": POINTS, "kinds": [faults.callback(lambda ctx: None)]}, faults.FaultError, "text form"),
    ({"points": POINTS, "kinds": []}, faults.FaultError, "at least one kind"),
    ({"points": []}, faults.FaultError, "at least one point"),
    ({"points": POINTS, "max_nth": 0}, faults.FaultError, "max_nth"),
    ({"points": POINTS, "max_faults": 0}, faults.FaultError, "max_faults"),
    ({"points": POINTS, "min_faults": 3, "max_faults": 2}, faults.FaultError, "max_faults"),
    ({"points": POINTS, "filters": {"bad key": [1]}}, faults.FaultError, "identifier"),
    ({"points": POINTS, "filters": {"x": [float("nan")]}}, faults.FaultError, "no text form"),
])
def test_bad_arguments_raise_the_engines_errors(kwargs: dict[str, object], error: type[Exception],
                                                message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        schedules(**kwargs)


def test_with_schedule_arms_for_the_block_only() -> None:
    s = Schedule("t_strategies_a=ENOMEM@nth=2;t_strategies_c=ENOMEM@nth=1")
    with faults.scope(inherit=False):
        with s as sc:
            assert [a.pattern for a in sc.armings()] == ["t_strategies_a", "t_strategies_c"]
            assert A.hit() is None and A.hit() is not None and C.hit() is not None
            assert [f.label() for f in sc.fired] == ["t_strategies_a:ENOMEM#2", "t_strategies_c:ENOMEM#1"]
        assert not faults.armed(A, C)
        with pytest.raises(RuntimeError), s:
            assert faults.armed(A)
            raise RuntimeError
        assert not faults.armed(A, C)
        with s.arm_scope(record=True) as sc:
            A.hit()
            assert sc.census["t_strategies_a"] == 1
        armings = s.arm()  # outside Hypothesis: the current scope's, until it ends
        assert faults.armed(A) and len(armings) == 2
    assert not faults.armed(A)


def test_exiting_the_wrong_schedule_is_an_error() -> None:
    s, t = Schedule("t_strategies_a=ENOMEM"), Schedule("t_strategies_c=ENOMEM")
    s.__enter__()
    try:
        with pytest.raises(faults.FaultError, match="entered last"):
            t.__exit__(None, None, None)
    finally:
        s.__exit__(None, None, None)
    assert not faults.armed(A)


def test_bad_schedules() -> None:
    with pytest.raises(faults.SpecSyntaxError, match="from schedule"):
        Schedule("t_strategies_a=")
    with pytest.raises(faults.FaultError, match="ArmingSpec"):
        Schedule(["t_strategies_a=ENOMEM"])  # type: ignore[list-item]
    cb = faults.ArmingSpec("t_strategies_a", (faults.TermSpec(faults.callback(lambda ctx: None)),))
    with pytest.raises(faults.FaultError, match="no text form"):
        Schedule([cb])
    with pytest.raises(faults.UnknownPoint), faults.scope():
        Schedule("t_strategies_zzz=ENOMEM").arm()


SEEN: list[bool] = []


@settings(max_examples=40, deadline=None, database=None)
@given(schedules(points=POINTS, min_faults=1))
def test_armings_of_one_example_never_reach_the_next(schedule: Schedule) -> None:
    # arm() without a with block: Hypothesis' cleanup disarms them when the example ends.
    SEEN.append(faults.armed(A, B, C))
    schedule.arm()
    assert faults.armed(*[a.pattern for a in schedule.armings])


def test_the_previous_test_left_nothing_armed() -> None:
    # Run after the one above (pytest keeps file order unless -p randomly shuffles them).
    if not SEEN:
        pytest.skip("the property test did not run first")
    assert SEEN and not any(SEEN)
    assert not faults.armed(A, B, C)


def test_a_failing_example_notes_its_gmem_fault_line() -> None:
    lines: list[str] = []

    @settings(max_examples=100, deadline=None, database=None)
    @given(schedules(points=POINTS, max_nth=3))
    def prop(schedule: Schedule) -> None:
        with schedule:
            fails = sum(A.hit() is not None for _ in range(3))
        assert fails < 2

    with with_reporter(lines.append), pytest.raises(AssertionError) as excinfo:
        prop()
    text = "\n".join([*lines, *getattr(excinfo.value, "__notes__", [])])
    found = re.search(r"schedule=Schedule\('([^']*)'\)", text)
    assert found is not None, text
    shrunk = Schedule(found.group(1))  # usually 't_strategies_a=EAGAIN@nth=1;t_strategies_a=EAGAIN@nth=2'
    assert [a.pattern for a in shrunk.armings] == ["t_strategies_a"] * 2
    assert f"reproduce without Hypothesis: --gmem-fault '{shrunk.text()}'" in text
    assert not faults.armed(A)


def test_import_faults_does_not_import_hypothesis() -> None:
    code = "import sys, faults, faults.schedule; faults.Schedule('x=enomem'); print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
