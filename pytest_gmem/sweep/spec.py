"""What a sweep runs: the ``fault_sweep`` marker's arguments (:class:`SweepSpec`), its
scenarios (:class:`Scenario`, :class:`SweepFault`) and the plan that lists them from a census;
the outcome words and the help texts. Kinds are the ``faults`` engine's (``Kind.id_label``,
``faults.kind_arguments``, ``faults.parse_kind``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import faults

OUTCOMES = ("clean", "success", "warn", "invariant", "kernel-bug", "not-fired", "failed", "skipped")
#: Outcomes that pass in a plain sweep; every other outcome fails the item unless expected
#: (a ``skipped`` item is reported as skipped by pytest itself).
PASSING = frozenset({"clean", "success"})

#: The phase whose hits a depth-2 sweep fails a second time.
ROLLBACK = "rollback"


def _printable(value: Any) -> bool:
    """Whether Python can write ``value`` as text (not an integer of more digits than
    ``sys.get_int_max_str_digits()``, nor a container holding one)."""
    try:
        repr(value)
    except ValueError:
        return False
    return True


def _shown(value: Any) -> str:
    """``repr(value)`` for a message, or what it is when Python refuses to write it as text."""
    if _printable(value):
        return repr(value)
    import sys

    digits = sys.get_int_max_str_digits()
    if isinstance(value, int):
        return f"an integer of more than {digits} digits"
    return f"a {type(value).__name__} holding an integer of more than {digits} digits"


COMPARE_HELP = (
    "Design comparison: run every swept test (fault_sweep marker, or every model test with "
    "--gmem-sweep) under each of these revisions, comma-separated ('all': every revision); "
    "sweep outcomes are data (WARN, invariant, KernelBug items are reported as xfail, not "
    "failures) and the terminal prints the per-revision table, also written as SVG and HTML "
    "next to --gmem-report. Default: off."
)
SWEEP_DEPTH_HELP = (
    "Depth of --gmem-sweep and of fault_sweep markers without depth=: 1 (one fault per "
    "scenario) or 2 (plus a second fault in the rollback phase). Default: 1."
)
MARKER_HELP = (
    "fault_sweep(points='*', kinds=('ENOMEM',), max_nth=None, depth=1, expect=()): run the test "
    "once per reachable (point, kind, nth), each scenario reported as test_x[sweep-POINT-KIND-NTH]; "
    "points: glob(s); kinds: in the fault grammar, e.g. 'speculative_refcount(hold=3)'; "
    "max_nth caps nth per point; depth=2 adds a second fault in the rollback phase; expect: "
    "outcomes reported as xfail instead of failures (e.g. ('warn',)); see docs/sweeps.md."
)


class SweepError(ValueError):
    """A bad fault_sweep argument; the message names the value and where it came from."""


# --- kinds: the faults engine's own records, with the sweep's errors -----------------------------
def parse_kind(text: str | faults.Kind, where: str = "fault_sweep") -> faults.Kind:
    """A kind object from its text-grammar form (:func:`faults.parse_kind`), or the object itself."""
    if isinstance(text, faults.Kind):
        return text
    if not isinstance(text, str) or not text.strip():
        raise SweepError(f"{where}: a kind must be a string in the fault grammar, got {_shown(text)}")
    try:
        return faults.parse_kind(text, source=where)
    except (faults.FaultError, ValueError, TypeError) as exc:
        raise SweepError(f"{where}: invalid kind {_shown(text)}: {exc}") from None


def kind_label(kind: faults.Kind) -> str:
    """The kind's compact form in an item id (:meth:`faults.Kind.id_label`)."""
    return kind.id_label()


def kind_args(kind: faults.Kind, where: str = "fault_sweep") -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``(name, keyword arguments)`` that rebuild ``kind`` (:func:`faults.kind_arguments`)."""
    try:
        return faults.kind_arguments(kind)
    except faults.FaultError:
        raise SweepError(f"{where}: cannot sweep kind {kind.label()!r} (a sweep re-arms its kinds by name: "
                         "errno codes, speculative_refcount, extra_refcount, tdx_error)") from None


# --- scenarios --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepFault:
    """One fault of a scenario: ``kind`` on the ``nth`` hit of ``point`` counted from the start
    of the test body (only hits of ``phase`` count when it is set)."""

    point: str
    kind: faults.Kind
    nth: int
    phase: str | None = None

    def ident(self) -> str:
        base = f"{self.point}-{kind_label(self.kind)}-{self.nth}"
        return f"{self.phase}-{base}" if self.phase else base

    def when(self) -> dict[str, str] | None:
        return {"phase": self.phase} if self.phase else None

    def text(self) -> str:
        """The fault in the text grammar (what ``--gmem-fault`` takes)."""
        from faults.spec import format_kind

        flt = f"[phase={self.phase}]" if self.phase else ""
        return f"{self.point}{flt}={format_kind(self.kind)}@nth={self.nth}"

    def to_json(self) -> dict[str, Any]:
        return {"point": self.point, "kind": self.kind.label(), "label": kind_label(self.kind),
                "nth": self.nth, "phase": self.phase, "text": self.text()}


@dataclass(frozen=True)
class Scenario:
    """What one sweep item carries: its faults (none for a census run) and, in a design
    comparison, the revision it runs under."""

    faults: tuple[SweepFault, ...] = ()
    revision: str | None = None

    @property
    def depth(self) -> int:
        return len(self.faults)

    def ident(self) -> str:
        """The id part of the item name: ``[REV-]sweep-POINT-KIND-NTH[-rollback-POINT-KIND-NTH]``."""
        body = "-".join(["sweep", *(f.ident() for f in self.faults)])
        return f"{self.revision}-{body}" if self.revision else body

    def extend(self, fault: SweepFault) -> Scenario:
        return Scenario((*self.faults, fault), self.revision)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.ident(), "revision": self.revision, "depth": self.depth,
                "faults": [f.to_json() for f in self.faults]}


@dataclass(frozen=True)
class SweepSpec:
    """The arguments of a ``fault_sweep`` marker (or ``--gmem-sweep``'s defaults)."""

    points: tuple[str, ...] = ("*",)
    kinds: tuple[faults.Kind, ...] = (faults.Errno("ENOMEM"),)
    max_nth: int | None = None
    depth: int = 1
    expect: frozenset[str] = frozenset()

    def key(self) -> str:
        return repr((self.points, [k.label() for k in self.kinds], self.max_nth, self.depth))


def sweep_spec(args: Sequence[Any], kwargs: Mapping[str, Any], where: str, default_depth: int = 1) -> SweepSpec:
    """Check a ``fault_sweep`` marker's arguments (``where``: "marker fault_sweep on test_x")."""
    names = ("points", "kinds", "max_nth", "depth", "expect")
    if len(args) > len(names):
        raise SweepError(f"{where}: takes at most {len(names)} positional arguments; signature: {MARKER_HELP}")
    values: dict[str, Any] = dict(zip(names, args, strict=False))
    for k, v in kwargs.items():
        if k not in names:
            import difflib

            close = difflib.get_close_matches(k, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SweepError(f"{where}: unexpected argument {k!r}{hint}; arguments: {', '.join(names)}")
        if k in values:
            raise SweepError(f"{where}: argument {k!r} given twice")
        values[k] = v
    points = values.get("points", "*")
    if not isinstance(points, (str, list, tuple)):
        raise SweepError(f"{where}: points must be a glob or a sequence of globs, got {_shown(points)}")
    points_t = (points,) if isinstance(points, str) else tuple(points)
    if not points_t or not all(isinstance(p, str) and p for p in points_t):
        raise SweepError(f"{where}: points must be a glob or a sequence of globs, got {_shown(points)}")
    for p in points_t:
        try:
            faults.match_points(p, where)
        except faults.FaultError as exc:
            raise SweepError(str(exc)) from None
    kinds = values.get("kinds", ("ENOMEM",))
    if not isinstance(kinds, (str, faults.Kind, list, tuple)):
        raise SweepError(f"{where}: kinds must be a kind or a sequence of kinds in the fault grammar, "
                         f"got {_shown(kinds)}")
    kinds_t = (kinds,) if isinstance(kinds, (str, faults.Kind)) else tuple(kinds)
    if not kinds_t:
        raise SweepError(f"{where}: kinds must name at least one kind")
    parsed: dict[str, faults.Kind] = {}
    for k in kinds_t:
        kind = parse_kind(k, where)
        kind_args(kind, where)  # a kind the sweep can re-arm
        parsed.setdefault(kind_label(kind), kind)  # "ENOMEM" and "enomem" are one kind: one item each nth
    max_nth = values.get("max_nth")
    if max_nth is not None and (isinstance(max_nth, bool) or not isinstance(max_nth, int) or max_nth < 1
                                or not _printable(max_nth)):  # a cap no message, key or report can hold
        raise SweepError(f"{where}: max_nth must be an integer >= 1 or None, got {_shown(max_nth)}")
    depth = values.get("depth", default_depth)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in (1, 2):
        raise SweepError(f"{where}: depth must be 1 or 2, got {_shown(depth)}")
    expect = values.get("expect", ())
    if not isinstance(expect, (str, list, tuple, set, frozenset)):
        raise SweepError(f"{where}: expect must be an outcome or a sequence of outcomes, got {_shown(expect)}")
    expect_t = (expect,) if isinstance(expect, str) else tuple(expect)
    if "any" in expect_t:
        expect_t = OUTCOMES
    bad = [e for e in expect_t if not isinstance(e, str) or e not in OUTCOMES]
    if bad:
        raise SweepError(f"{where}: unknown outcome(s) {_shown(bad)} in expect; outcomes: {', '.join(OUTCOMES)}, any")
    return SweepSpec(points_t, tuple(parsed.values()), max_nth, int(depth), frozenset(expect_t))


def _matches(point: str, globs: Iterable[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(point, g) for g in globs)


def plan(spec: SweepSpec, census: Mapping[str, int], base: Scenario, phase: str | None = None) -> list[Scenario]:
    """The scenarios that extend ``base`` by one fault: every point reached (``census``: hits
    per point, of ``phase`` only when given) that the spec selects, every kind the spec asks
    for that the point's allow-list allows, every nth up to the hits (capped by max_nth)."""
    out: list[Scenario] = []
    for point in sorted(census):
        hits = int(census[point])
        if hits <= 0 or not _matches(point, spec.points):
            continue
        try:
            fp = faults.get_point(point)
        except faults.FaultError:
            continue
        for kind in spec.kinds:
            if not fp.allows(kind):
                continue
            last = hits if spec.max_nth is None else min(hits, spec.max_nth)
            out.extend(base.extend(SweepFault(point, kind, nth, phase)) for nth in range(1, last + 1))
    return out
