"""How a scenario ended: the outcome words in the order :func:`classify` checks them, and the
state of one sweep item while it runs (:class:`ItemState`, kept in the item's stash)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faults

from .census import BodyCensus, Census
from .spec import Scenario


def is_kernel_bug(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what it was raised from) is the model's ``KernelBug`` (by class name:
    the model may be reloaded, as pytester does)."""
    seen = 0
    while exc is not None and seen < 10:
        if any(c.__name__ == "KernelBug" for c in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def classify(
    *,
    fired: bool,
    kernel_bug: bool,
    problems: Iterable[str],
    body_failed: bool,
    error_after_fire: bool,
    skipped: bool = False,
) -> str:
    """One outcome word for a scenario (see the module docstring for the order)."""
    kinds = set(problems)
    if kernel_bug:
        return "kernel-bug"
    if "invariant" in kinds:
        return "invariant"
    if "warn" in kinds:
        return "warn"
    if body_failed:
        return "failed"
    if skipped:
        return "skipped"
    if not fired:
        return "not-fired"
    return "clean" if error_after_fire else "success"


class ErrorWatch:
    """Remembers how many errors each host had returned to the caller when the scenario's first
    fault fired, to tell afterwards whether one reached the caller since (``host.user_errors``)."""

    def __init__(self) -> None:
        self.marks: dict[int, int] | None = None

    def fired(self, hosts: Iterable[Any]) -> None:
        if self.marks is None:
            self.marks = {id(h): len(getattr(h, "user_errors", ())) for h in hosts}

    def errors_since(self, hosts: Iterable[Any]) -> list[Any]:
        if self.marks is None:
            return []
        out: list[Any] = []
        for h in hosts:
            out.extend(list(getattr(h, "user_errors", ()))[self.marks.get(id(h), 0):])
        return out


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""


# --- one sweep item's state (the plugin keeps it in the item's stash) ---------------------------
@dataclass
class ItemState:
    """A sweep item (or a census run) while it runs: the faults it carries, which outcomes are
    tolerated (reported as xfail instead of failing), and what the run showed."""

    scenario: Scenario
    source: str
    base_nodeid: str
    census_mode: bool = False
    tolerated: frozenset[str] = frozenset()
    flags: str = ""  # command-line options that make the item exist (for the reproduce line)
    body: BodyCensus | None = None
    census: Census | None = None
    watch: ErrorWatch = field(default_factory=ErrorWatch)
    fired: bool = False
    body_failed: bool = False
    body_skipped: bool = False  # pytest.skip() / pytest.xfail() in the body: not a failure
    phase_failed: str | None = None  # "setup" or "teardown": a fixture (not the plugin's checks) failed
    kernel_bug: bool = False
    detail: str = ""

    def arm_requests(self) -> list[Any]:
        """The scenario's faults as the plugin arms them at the start of the body
        (``config.ArmRequest``: re-armed by kind name, ``source`` names the sweep)."""
        from ..config import ArmRequest
        from .spec import kind_args

        out = []
        for f in self.scenario.faults:
            name, args = kind_args(f.kind)
            out.append(ArmRequest(self.source, f.point, name, args, f.nth, 1, f.when(), label=f.text()))
        return out

    def fired_fault(self, fired: faults.Fired, hosts: Iterable[Any]) -> None:
        if fired.arming.source == self.source:
            self.watch.fired(hosts)

    def begin_body(self, scope: faults.Scope) -> None:
        if self.census_mode:  # only a census run reads its body's hits (a walk of the whole trace)
            self.body = BodyCensus(scope)

    def body_raised(self, exc: BaseException, *, skipped: bool = False) -> None:
        """The body raised ``exc``; ``skipped``: it is pytest's skip or xfail, not a failure."""
        if skipped:
            self.body_skipped = True
            self.detail = self.detail or f"skipped: {_first_line(exc)}"
            return
        self.kernel_bug = self.kernel_bug or is_kernel_bug(exc)
        self.body_failed = True
        self.detail = self.detail or f"{type(exc).__name__}: {_first_line(exc)}"

    def outside_body_raised(self, phase: str, exc: BaseException) -> None:
        """A fixture failed in ``phase`` ("setup", "teardown"): the item errors, so the
        scenario is ``failed`` (unless a KernelBug, WARN or invariant outranks it)."""
        self.kernel_bug = self.kernel_bug or is_kernel_bug(exc)
        self.phase_failed = self.phase_failed or phase
        self.detail = self.detail or f"{phase}: {type(exc).__name__}: {_first_line(exc)}"

    def end_body(self, scope: faults.Scope, hosts: Iterable[Any]) -> None:
        if self.body is not None and self.census is None:
            self.census = self.body.stop()
            self.census.ok = not self.body_failed
        self.fired = any(a.fired for a in scope.history if a.source == self.source)
        if self.census is not None:
            self.census.fired = self.fired
            # a probabilistic fault rolls the scope's seeded dice: the hits may depend on the seed
            self.census.seeded = self.census.seeded or any(not a.policy.deterministic for a in scope.history)
        for e in self.watch.errors_since(hosts):
            if e.error == "KernelBug":
                self.kernel_bug = True
                self.detail = self.detail or f"KernelBug: {e.message}"

    def outcome(self, problems: Sequence[Any], hosts: Iterable[Any]) -> str:
        errors = self.watch.errors_since(hosts)
        return classify(
            fired=self.fired,
            kernel_bug=self.kernel_bug,
            problems=[str(getattr(p, "kind", p)) for p in problems],
            body_failed=(self.body_failed or self.phase_failed is not None) and not self.kernel_bug,
            error_after_fire=bool(errors),
            skipped=self.body_skipped,
        )

    def failure_after_body(self) -> str | None:
        """Why a body that passed still fails the item (plain sweeps): the fault never fired,
        or a KernelBug reached the caller and the test swallowed it."""
        if self.kernel_bug:
            return f"gmem sweep: a KernelBug reached the caller (the test caught it): {self.detail}"
        if not self.fired and self.scenario.faults:
            return (f"gmem sweep: {self.scenario.faults[-1].text()} never fired, although the census run "
                    "reached it (does the test do the same thing on every run?)")
        return None

    def record(self, outcome: str, problems: Sequence[Any], hosts: Iterable[Any], revision: str) -> dict[str, Any]:
        errors = self.watch.errors_since(hosts)
        detail = self.detail
        texts = [str(getattr(p, "text", p)) for p in problems]
        if outcome in ("warn", "invariant") and texts:
            detail = texts[0]
        elif outcome == "clean" and errors:
            detail = f"{errors[0].operation}: {errors[0].message}"
        return {
            **self.scenario.to_json(),
            "base": self.base_nodeid,
            "revision": revision,
            "compared": self.scenario.revision is not None,
            "outcome": outcome,
            "detail": detail_text(detail),
        }


#: The longest detail a record keeps (a KernelBug's message with its reference fits easily).
DETAIL_CHARS = 1200


def detail_text(detail: str | None) -> str:
    """A scenario's detail as one line: the message's first lines joined (an assertion's
    comparison spans several), never cut mid-word; only a runaway text is shortened, at a word,
    with an ellipsis."""
    if not detail:
        return ""
    text = " ".join(line.strip() for line in detail.splitlines()[:6] if line.strip())
    if len(text) <= DETAIL_CHARS:
        return text
    cut = text.rfind(" ", 0, DETAIL_CHARS)
    return text[:cut if cut > 0 else DETAIL_CHARS] + " ..."
