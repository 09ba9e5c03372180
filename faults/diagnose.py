"""Why an arming never fired, in the catalog's words.

An arming that never fired is nearly always a wrong test: the code never reached the point
(a precondition the point's ``reached`` text states did not hold), reached it fewer times than
``nth`` asks, or never with a context that passes the ``when`` filter. :func:`why_unfired`
tells which, from what the scope recorded (its census and trace), and names the points the
code did reach nearest to the armed one (declared in the same module first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .arming import RulePolicy
from .points import _REGISTRY

if TYPE_CHECKING:
    from .arming import Arming
    from .scope import Scope

#: How many reached points the diagnosis names.
NEAREST = 5


def why_unfired(arming: Arming, scope: Scope) -> list[str]:
    """Lines saying why ``arming`` (made in ``scope``, a recording scope) never fired."""
    points = sorted(arming.points)
    census: Mapping[str, int] = scope.census
    reached = sum(census.get(p, 0) for p in points)
    if reached == 0:
        return _never_reached(points, census)
    label = arming.pattern if len(points) > 1 else points[0]
    if arming.hits == 0 and arming.when is not None:
        lines = [f"{label} was reached {_times(reached)}, but never with a context that passes the filter "
                 f"{_when_text(arming.when)}"]
        seen = _contexts_seen(scope, arming)
        if seen:
            lines.append("contexts seen there: " + "; ".join(seen))
        return lines
    counted = f" ({arming.hits} passed the filter)" if arming.when is not None else ""
    lines = [f"{label} was reached {_times(reached)}{counted}, but the rule {arming.policy.describe()} never fired"]
    policy = arming.policy
    if isinstance(policy, RulePolicy):
        if policy.probability is None and arming.hits < policy.start:
            lines.append(f"it fires at hit {policy.start} of the point at the earliest: the test reached it "
                         f"{_times(arming.hits)} (nth counts from 1, per test)")
        elif policy.probability is not None:
            lines.append(f"probability={policy.probability} drew no fault in {_times(arming.hits)} (arming seed "
                         f"{arming.seed}); a fixed nth= fires deterministically")
    return lines


def _never_reached(points: list[str], census: Mapping[str, int]) -> list[str]:
    lines: list[str] = []
    for name in points[:3]:
        point = _REGISTRY.get(name)
        why = f": it is reached when {point.reached}" if point is not None and point.reached else ""
        lines.append(f"{name} was never reached{why}")
    if len(points) > 3:
        lines.append(f"(and {len(points) - 3} more points matched by the pattern, none reached)")
    near = nearest(points, census)
    if near:
        lines.append("the test reached: " + ", ".join(f"{p} x{n}" for p, n in near))
    else:
        lines.append("the test reached no fault point at all: did it build a file and run the code under test "
                     "while the fault was armed?")
    return lines


def nearest(points: list[str], census: Mapping[str, int]) -> list[tuple[str, int]]:
    """The reached points closest to ``points``: declared in the same module first, then the
    most hit."""
    modules = {_REGISTRY[p].module for p in points if p in _REGISTRY}

    def key(item: tuple[str, int]) -> tuple[int, int, str]:
        p, n = item
        same = p in _REGISTRY and _REGISTRY[p].module in modules
        return (0 if same else 1, -n, p)

    hit = [(p, n) for p, n in census.items() if n and p not in points]
    return sorted(hit, key=key)[:NEAREST]


def _contexts_seen(scope: Scope, arming: Arming) -> list[str]:
    """For a mapping filter: the values each filtered key had at the armed points."""
    when = arming.when
    if not isinstance(when, Mapping):
        return []
    values: dict[str, set[str]] = {k: set() for k in when}
    for event in scope.trace:
        if event.point in arming.points:
            for k in when:
                values[k].add(repr(event.context.get(k)) if k in event.context else "(absent)")
    return [f"{k} = {', '.join(sorted(v)[:8])}" for k, v in values.items() if v]


def _when_text(when: Any) -> str:
    if isinstance(when, Mapping):
        return " ".join(f"{k}={v!r}" for k, v in when.items())
    return "<callable>"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"
