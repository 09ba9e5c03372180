"""coverage.py dynamic contexts that name the injected fault (pytest-free).

While a test runs, pytest-cov's ``--cov-context=test`` labels data ``{nodeid}|setup``,
``{nodeid}|run`` and ``{nodeid}|teardown``. :class:`FaultContexts` extends that label the moment
a fault *fires*: from then until the end of the phase (for the test body: until the plugin
disarms every fault, right after the body) the context is::

    {nodeid}|run|fault={point}:{kind}#{nth}

(``{kind}`` spelled as in a sweep item's id, :func:`fault_label`) and, when a second fault
fires in the same phase, ``fault=a:ENOMEM#1+b:ENOMEM#3`` (firing order). At the end of the
phase the plain ``{nodeid}|run`` is restored (or no dynamic context at all when nothing else
labels tests), so ``coverage html --show-contexts`` shows, for each line, which injected fault
reached it. Lines the test ran before the fault fired keep the plain label:
they ran whatever the fault.

The label is taken when the fault fires rather than when it is armed: the same code serves a
marker, ``--gmem-fault``, the ``faults`` fixture (whose armings may use globs, ``every`` or a
probability, so the hit that fires is not known up front) and a sweep item (whose one fault,
``point-kind-n``, gets ``point:kind#n``: the fault its node id names).

Nothing here imports coverage at module level: :func:`current_coverage` looks it up lazily and
every method is a no-op when coverage is not installed or not measuring.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FAULT_SEP = "|fault="
#: what a fault context looks like: ``[static|]{nodeid}|{phase}|fault={label}[+{label}...]``
FAULT_CONTEXT_RE = re.compile(r"^(?P<test>.*)\|(?P<phase>setup|run|teardown)\|fault=(?P<faults>[^|]+)$")
PHASES = {"setup": "setup", "call": "run", "teardown": "teardown"}
#: the parameter id appended to the node id of a sweep's census run (a copy of the test run at
#: collection, with the scenario's faults armed but no fault hook called): its contexts are
#: ``test_x[gmem-census]|{phase}`` (``test_x[p1-gmem-census]|...`` for a parametrized test),
#: never taken for a plain run of the test.
CENSUS_ID = "gmem-census"
CENSUS_CONTEXT_RE = re.compile(r"[\[-]gmem-census\]\|(setup|run|teardown)(\|fault=[^|]+)?$")


def current_coverage() -> Any:
    """``coverage.Coverage.current()`` when coverage is installed and measuring, else None."""
    try:
        import coverage
    except ImportError:  # pragma: no cover - coverage is a dependency
        return None
    cov = coverage.Coverage.current()
    if cov is None or not getattr(cov, "_started", True):
        return None
    return cov


def phase_context(nodeid: str, phase: str) -> str:
    """pytest-cov's label for a test phase (``phase``: setup, call or run, teardown)."""
    return f"{nodeid}|{PHASES.get(phase, phase)}"


def fault_label(fired: Any) -> str:
    """``{point}:{kind}#{nth}`` of a ``faults.Fired``, the kind spelled as in a sweep item's id
    (``Kind.id_label``: ``ENOMEM``, ``specref.hold3``, ``specref.forever``, ``tdx.busy``), so
    that distinct kinds stay distinct (``Fired.label()`` says only ``speculative_refcount``)."""
    return f"{fired.point}:{fired.kind.id_label()}#{fired.nth}"


def fault_context(base: str, labels: list[str]) -> str:
    """``{base}|fault=a:ENOMEM#1+b:ENOMEM#2``."""
    return f"{base}{FAULT_SEP}{'+'.join(labels)}"


def split_fault_context(context: str) -> tuple[str, list[str]] | None:
    """``(test part, [fault labels])`` of a fault context, None for any other context."""
    m = FAULT_CONTEXT_RE.match(context)
    if m is None:
        return None
    return f"{m['test']}|{m['phase']}", m["faults"].split("+")


def is_census_context(context: str) -> bool:
    """A context of a sweep's census run (``test_x[gmem-census]|run``): neither a plain run nor a
    fault's."""
    return CENSUS_CONTEXT_RE.search(context) is not None


def dynamic_context_conflict(cov: Any) -> str | None:
    """The config's ``[run] dynamic_context`` if one is set: switching contexts by hand would
    fight it (coverage warns "Conflicting dynamic contexts")."""
    value = getattr(getattr(cov, "config", None), "dynamic_context", None)
    return str(value) if value else None


@dataclass
class FaultContexts:
    """Switches coverage's dynamic context around the faults of the tests.

    ``test_contexts()`` says whether something (pytest-cov's ``--cov-context=test``, or
    ``label_phases``) labels every phase ``{nodeid}|{phase}``: then that is what is restored
    after a fault; otherwise the dynamic context is cleared (coverage's default, ``""``).
    ``label_phases``: switch to ``{nodeid}|{phase}`` at the start of each phase ourselves (when
    the plugin runs its own measurement, which has no pytest-cov to do it).
    """

    test_contexts: Callable[[], bool] = lambda: False
    label_phases: bool = False
    coverage: Callable[[], Any] = current_coverage
    nodeid: str = ""
    phase: str = ""
    labels: list[str] = field(default_factory=list)
    switches: int = 0

    def _switch(self, label: str) -> None:
        cov = self.coverage()
        if cov is None or dynamic_context_conflict(cov):
            return
        cov.switch_context(label)
        self.switches += 1

    def base(self) -> str:
        if self.label_phases or self.test_contexts():
            return phase_context(self.nodeid, self.phase)
        return ""

    def begin(self, nodeid: str, phase: str) -> None:
        """A test phase starts (setup, call, teardown)."""
        self.nodeid, self.phase, self.labels = nodeid, phase, []
        if self.label_phases:
            self._switch(self.base())

    def fired(self, label: str) -> None:
        """A fault fired (``Fired.label()``): label everything from here on with it."""
        if not self.nodeid:
            return  # outside a test phase (an import-time arming): nothing to name
        self.labels.append(label)
        self._switch(fault_context(phase_context(self.nodeid, self.phase), self.labels))

    def end(self) -> None:
        """The phase ended (for the body: its faults are disarmed): restore the plain label."""
        if self.labels:
            self.labels = []
            self._switch(self.base())

    def finish(self) -> None:
        """The test is over (after teardown)."""
        self.end()
        if self.label_phases:
            self._switch("")
        self.nodeid = self.phase = ""
