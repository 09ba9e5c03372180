"""A fault schedule: a set of armings as one frozen value, written in the text grammar.

``faults.strategies.schedules()`` draws these for Hypothesis; this module does not import
Hypothesis (it only asks ``sys.modules`` whether a Hypothesis test is running)::

    s = Schedule("kvm_gmem_has_safe_refcount=speculative_refcount@nth=1;"
                 "kvm_gmem_convert_compute_work=ENOMEM@nth=2")
    s.text()            # the canonical text: what --gmem-fault, GMEM_FAULTS, faults.arm() take
    with s:             # a nested scope holding the schedule's armings, closed at the end
        run()
    armings = s.arm()   # or arm in the current scope (inside a Hypothesis example they are
                        # disarmed when the example ends)
"""

from __future__ import annotations

import contextvars
import shlex
import sys
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from .arming import Arming
from .errors import FaultError
from .grammar import arm, parse
from .scope import Scope, scope
from .spec import ArmingSpec, format_spec

#: The schedules entered with ``with schedule:`` in this context, innermost last.
_ENTERED: contextvars.ContextVar[tuple[tuple[Schedule, AbstractContextManager[Scope]], ...]] = (
    contextvars.ContextVar("faults_schedules_entered", default=())
)

SOURCE = "schedule"


@dataclass(frozen=True, init=False, repr=False)
class Schedule:
    """Armings as a value: ``Schedule(text)`` or ``Schedule([ArmingSpec, ...])``.

    Two schedules are equal when they arm the same way, in the same order (the text's spelling
    and whitespace do not matter). ``repr()`` is ``Schedule('<canonical text>')``, a Python
    expression that builds the same value (``@hypothesis.example(Schedule('...'))``) and holds
    the text a user passes to ``--gmem-fault`` unchanged."""

    armings: tuple[ArmingSpec, ...]

    def __init__(self, spec: str | ArmingSpec | Iterable[ArmingSpec] = ()) -> None:
        if isinstance(spec, str):
            specs = tuple(parse(spec, SOURCE))
        elif isinstance(spec, ArmingSpec):
            specs = (spec,)
        else:
            specs = tuple(spec)
            for s in specs:
                if not isinstance(s, ArmingSpec):
                    raise FaultError(f"a Schedule holds ArmingSpec values (faults.parse()), got {s!r}")
        format_spec(specs)  # every arming must have a text form (no callback kinds)
        object.__setattr__(self, "armings", specs)

    # --- text -----------------------------------------------------------------------------------
    def text(self) -> str:
        """The canonical text (``""`` for the empty schedule): ``faults.arm(s.text())``, the
        pytest plugin's ``--gmem-fault`` and ``GMEM_FAULTS`` arm exactly these armings."""
        return format_spec(self.armings)

    def option(self) -> str:
        """The schedule as a pytest-gmem command-line option, quoted for a POSIX shell:
        ``--gmem-fault 'p=ENOMEM@nth=2'``."""
        text = self.text()
        quoted = shlex.quote(text) if "'" in text else f"'{text}'"
        return f"--gmem-fault {quoted}"

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"Schedule({self.text()!r})"

    def __len__(self) -> int:
        return len(self.armings)

    # --- arming ---------------------------------------------------------------------------------
    def arm(self, source: str | None = None) -> list[Arming]:
        """Arm every arming in the current scope, all or nothing (see :func:`faults.arm`).

        Inside a Hypothesis example the armings are also disarmed when the example ends
        (``hypothesis.control.cleanup``), so they never reach the next example, and the
        schedule's ``--gmem-fault`` line is noted for the failing example's report."""
        armings = arm(self.armings, source or SOURCE)
        _end_with_example(self, armings)
        return armings

    @contextmanager
    def arm_scope(self, *, inherit: bool = True, record: bool = False, source: str | None = None) -> Iterator[Scope]:
        """A nested scope (``faults.scope(inherit=..., record=...)``) holding the schedule's
        armings for the block: they end with it, also when it raises. With ``inherit=True``
        (the default) what the enclosing scope armed (a test's markers, ``--gmem-fault``) still
        fires, before the schedule's own armings on a tie."""
        with scope(inherit=inherit, record=record, name=f"schedule {self.text()}") as sc:
            self.arm(source)
            yield sc

    def __enter__(self) -> Scope:
        """``with schedule:`` is ``with schedule.arm_scope():``."""
        cm = self.arm_scope()
        sc = cm.__enter__()
        _ENTERED.set((*_ENTERED.get(), (self, cm)))
        return sc

    def __exit__(self, *exc: Any) -> None:
        stack = _ENTERED.get()
        if not stack or stack[-1][0] is not self:
            raise FaultError(f"{self!r} exited without being the schedule entered last in this context")
        _ENTERED.set(stack[:-1])
        stack[-1][1].__exit__(*exc)


def _end_with_example(schedule: Schedule, armings: list[Arming]) -> None:
    """Inside a Hypothesis example: disarm ``armings`` when it ends and note the schedule."""
    if "hypothesis" not in sys.modules:  # ask before importing: no Hypothesis, no example
        return
    from hypothesis.control import cleanup, currently_in_test_context, note

    if not currently_in_test_context():
        return

    def disarm() -> None:
        # An arming that never fired is forgotten (a drawn fault the example never reached is
        # not a wrong test: it stays out of the scope's never-fired report).
        for a in reversed(armings):
            if a.fired:
                a.disarm()
            else:
                a.scope.forget(a)

    cleanup(disarm)
    note(f"reproduce without Hypothesis: {schedule.option()}")
