"""Hypothesis strategies over the declared fault points (this module imports Hypothesis;
``import faults`` does not import it).

    from hypothesis import given
    from faults.strategies import schedules

    @given(schedules(points=["kvm_gmem_*"], max_faults=2))
    def test_retry(schedule):
        ...                        # build the objects under test
        with schedule:             # the schedule's faults, for this example only
            ...                    # the code under test

A drawn :class:`~faults.schedule.Schedule` is a set of keyword-form armings
``point[key=value]=KIND@nth=N``, each firing once, on the N-th hit of ``point`` counted from
the moment of arming (that passes the filter). It shrinks toward fewer armings, smaller ``nth``,
the first point and kind listed, and no filter; its ``repr`` is ``Schedule('<text>')`` with the
text that ``--gmem-fault`` takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from .errors import FaultError, KindNotAllowed
from .grammar import parse
from .kinds import Callback, Errno, ExtraRefcount, Kind, Off, SpeculativeRefcount, TdxError
from .points import FaultPoint, match_points
from .schedule import Schedule
from .spec import ArmingSpec, RuleSpec, TermSpec, Value, format_kind, format_spec, format_value

__all__ = ["Schedule", "schedules"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def schedules(
    points: str | Iterable[str] = "*",
    kinds: Iterable[str | Kind] | None = None,
    *,
    max_faults: int = 3,
    max_nth: int = 5,
    min_faults: int = 0,
    filters: Mapping[str, Iterable[Value]] | None = None,
) -> st.SearchStrategy[Schedule]:
    """A strategy drawing :class:`Schedule` values.

    ``points``: point names or fnmatch globs (``"kvm_gmem_*"``), resolved now against
    ``faults.catalog()`` (an unknown name is ``faults.UnknownPoint``). ``kinds``: kinds in the
    text grammar (``"ENOMEM"``, ``"speculative_refcount(hold=3)"``) or kind objects; None (the
    default) draws from each point's allow-list (``tdx_error`` as both a retryable BUSY and a
    fatal error; the other kinds with their default arguments). A point is drawn only with the
    kinds it can produce; a point named without a glob that can produce none of ``kinds`` is
    ``faults.KindNotAllowed``. ``min_faults`` .. ``max_faults`` armings, no two the same, each
    with ``nth`` from 1 to ``max_nth``. ``filters`` maps context keys to the values an arming
    may filter on (``{"phase": ["forward", "rollback"]}``): each arming has no filter or one
    ``key=value`` pair from it.
    """
    _check_count("min_faults", min_faults, 0)
    _check_count("max_faults", max_faults, max(min_faults, 1))
    _check_count("max_nth", max_nth, 1)
    table = _point_kinds(points, kinds)
    whens = _filter_choices(filters)

    @st.composite
    def one(draw: st.DrawFn) -> ArmingSpec:
        point, point_kinds = draw(st.sampled_from(table))
        kind = draw(st.sampled_from(point_kinds))
        nth = draw(st.integers(1, max_nth))
        when = draw(st.sampled_from(whens)) if len(whens) > 1 else ()
        return ArmingSpec(point, (TermSpec(kind),), RuleSpec(nth=nth), when)

    return st.lists(one(), min_size=min_faults, max_size=max_faults, unique=True).map(
        lambda specs: Schedule(sorted(specs, key=_order))
    )


def _order(spec: ArmingSpec) -> tuple[str, int, str, str]:
    """Armings in a canonical order: by point, then nth (the text reads as a timeline)."""
    assert spec.rule is not None and spec.rule.nth is not None
    return spec.pattern, spec.rule.nth, format_kind(spec.kind), format_spec(spec)


def _check_count(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise FaultError(f"schedules({name}=...) must be an integer >= {low}, got {value!r}")


def _point_kinds(points: str | Iterable[str], kinds: Iterable[str | Kind] | None) -> list[tuple[str, list[Kind]]]:
    """(point name, kinds it may be drawn with) for every point, in name order."""
    source = "schedules(points=...)"
    patterns = [points] if isinstance(points, str) else list(points)
    if not patterns:
        raise FaultError("schedules(points=...) needs at least one point name or glob")
    wanted = None if kinds is None else [_as_kind(k) for k in ([kinds] if isinstance(kinds, str | Kind) else kinds)]
    if wanted is not None and not wanted:
        raise FaultError("schedules(kinds=...) needs at least one kind (or None: each point's allow-list)")
    table: dict[str, list[Kind]] = {}
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise FaultError(f"schedules(points=...) takes point names or globs, got {pattern!r}")
        found = match_points(pattern, source)
        glob = len(found) > 1 or found[0].name != pattern
        for point in found:
            usable = _default_kinds(point) if wanted is None else [k for k in wanted if point.allows(k)]
            if not usable and not glob:
                point.check_kind(wanted[0] if wanted else Off(), "schedules(kinds=...)")
            if usable:
                table.setdefault(point.name, usable)
    if not table:
        names = ", ".join(format_kind(k) for k in wanted or [])
        raise KindNotAllowed(f"no fault point matching {patterns!r} (from {source}) can produce {names}")
    return sorted(table.items())


def _default_kinds(point: FaultPoint) -> list[Kind]:
    out: list[Kind] = []
    for name in sorted(point.kinds):
        if name == SpeculativeRefcount.name:
            out.append(SpeculativeRefcount())
        elif name == ExtraRefcount.name:
            out.append(ExtraRefcount())
        elif name == TdxError.name:
            out += [TdxError("TDX_OPERAND_BUSY"), TdxError("fatal")]
        elif name not in ("off", "callback"):
            out.append(Errno(name))
    return out


def _as_kind(kind: str | Kind) -> Kind:
    """A kind object, or a kind in the text grammar (``"speculative_refcount(hold=3)"``)."""
    if isinstance(kind, str):
        specs = parse(f"_={kind}", "schedules(kinds=...)")
        if len(specs) != 1 or len(specs[0].terms) != 1 or specs[0].rule or specs[0].terms[0] != TermSpec(specs[0].kind):
            raise FaultError(f"schedules(kinds=...) takes one kind per item, such as 'ENOMEM', got {kind!r}")
        kind = specs[0].kind
    if not isinstance(kind, Kind) or isinstance(kind, Off | Callback):
        raise FaultError(f"schedules(kinds=...) takes kinds that fire and have a text form, got {kind!r}")
    format_kind(kind)  # FaultError when it has no text form
    return kind


def _filter_choices(filters: Mapping[str, Iterable[Value]] | None) -> Sequence[tuple[tuple[str, Any], ...]]:
    """``()`` (no filter) first, so that it is what the shrinker aims for, then each pair."""
    out: list[tuple[tuple[str, Any], ...]] = [()]
    for key, values in (filters or {}).items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise FaultError(f"schedules(filters=...): context key {key!r} must be an identifier such as 'phase'")
        if isinstance(values, str):
            values = [values]
        for value in values:
            format_value(value)  # FaultError when the grammar cannot write it
            out.append(((key, value),))
    return out
