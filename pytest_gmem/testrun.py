"""One test's faults scope, its armings, the hosts it built, and the after-test checks.

Pytest-free: the plugin creates a :class:`TestRun` at setup, arms it just before the test
body, calls :meth:`TestRun.end_body` after it and :meth:`TestRun.finish` at the very end of
teardown, whatever happened in between. The ``faults`` and ``gmem_factory`` fixture objects
live here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faults
from faults.scope import _ROOT

from .config import ArmRequest, GmemParams

_T = TypeVar("_T")


@dataclass
class Problem:
    """Something the after-test check found: a broken invariant or an unexpected WARN."""

    kind: str  # "invariant" or "warn"
    text: str


def warn_text(record: object) -> str:
    """One WARN record as a line: location, message, and the fault that was active."""
    where = getattr(record, "where", None)
    message = getattr(record, "message", None)
    fault = getattr(record, "fault", None)
    if where is None and message is None:
        return str(record)
    line = f"WARN at {where}: {message}"
    if not fault:
        return line
    several = ", " in str(fault)  # the labels of every fault active then, joined
    return line + (f" (while faults {fault} were active)" if several else f" (while fault {fault} was active)")


def warn_allowed(record: object, allow: Sequence[re.Pattern[str]]) -> bool:
    """An ``allow_warn`` pattern matches the WARN's location or its message (not the text the
    plugin renders around them, such as "while fault ... was active")."""
    where = getattr(record, "where", None)
    message = getattr(record, "message", None)
    fields = [str(record)] if where is None and message is None else [str(where or ""), str(message or "")]
    return any(p.search(f) for p in allow for f in fields)


def root_leak_text(nodeid: str, leaked: Sequence[faults.Arming]) -> str:
    """The failure text for faults armed in the process-wide root scope during a test."""
    lines = [f"gmem: {nodeid} armed {len(leaked)} fault(s) in the process-wide root faults scope "
             "(a thread the test started has no test scope), where they would fire in every later test:"]
    for a in leaked:
        lines.append(f"  {a.describe()}" + (f"  [{a.source}]" if a.source else ""))
    lines.append("They were disarmed. Arm through the `faults` fixture (it arms in the test's own scope from "
                 "any thread), or arm in the test's thread.")
    return "\n".join(lines)


@dataclass
class TestRun:
    """The plugin's state for one test."""

    __test__ = False  # not a test class, whatever pytest's python_classes says

    nodeid: str
    seed: int
    requests: Sequence[ArmRequest] = ()
    allow: Sequence[re.Pattern[str]] = ()
    check: bool = True
    scope: faults.Scope = field(init=False)
    hosts: list[Any] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    armed_at_start: list[faults.Arming] = field(default_factory=list)
    used_model: bool = False
    texts: dict[int, str] = field(default_factory=dict)  # arming id -> its text-grammar form
    _token: Any = None
    _root_before: dict[int, faults.Arming] = field(default_factory=dict)
    _warn_seen: dict[int, int] = field(default_factory=dict)
    _closed_hosts: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        # inherit=False: nothing armed outside the test (at module import, in another test that
        # leaked a handle) can fire inside it.
        self.scope = faults.open_scope(inherit=False, record=True, seed=self.seed, name=self.nodeid)

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Make the test's scope current (setup, before any fixture)."""
        self._root_before = {id(a): a for a in _ROOT.armings()}
        self._token = faults.activate(self.scope)

    def root_leaks(self) -> list[faults.Arming]:
        """Armings made in the process-wide root scope since :meth:`start` and still live (a
        thread the test started arms there: it does not run in the test's context). They are
        disarmed here, and returned for the failure message."""
        leaked = [a for a in _ROOT.armings() if id(a) not in self._root_before]
        for arming in leaked:
            arming.disarm()
        return leaked

    def arm(self) -> None:
        """Arm the marker and command-line faults (just before the test body)."""
        for req in self.requests:
            armings = req.arm()
            if len(armings) == 1:
                self.texts[id(armings[0])] = req.text()
            self.armed_at_start.extend(armings)

    def arming_text(self, arming: faults.Arming) -> str:
        """An arming as the reports show it: the text-grammar form it was armed from, else its
        description."""
        text = self.texts.get(id(arming))
        return arming.describe() if text is None else text

    def end_body(self) -> list[Problem]:
        """Disarm everything (transient references are dropped), then check every host."""
        for arming in reversed(self.scope.armings()):
            arming.disarm()
        return self.run_checks()

    def run_checks(self) -> list[Problem]:
        """host.check() and new WARNs of each host; returns only what is new since last time."""
        if not self.check:
            return []
        found: list[Problem] = []
        for host in self.hosts:
            found.extend(self._check_host(host))
        self.problems.extend(found)
        return found

    def _check_host(self, host: Any) -> list[Problem]:
        found: list[Problem] = []
        if not any(p.kind == "invariant" for p in self.problems):
            try:
                host.check()
            except Exception as exc:  # InvariantViolation; anything else is a model bug to show
                violations = getattr(exc, "violations", None) or [str(exc)]
                name = type(exc).__name__
                found.extend(Problem("invariant", f"{name}: {v}") for v in violations)
        warnings = list(getattr(host, "warnings", []))
        start = self._warn_seen.get(id(host), 0)
        self._warn_seen[id(host)] = len(warnings)
        for record in warnings[start:]:
            if not warn_allowed(record, self.allow):
                found.append(Problem("warn", warn_text(record)))
        return found

    def close_hosts(self) -> list[Problem]:
        """Close every host (all its files) and check again: leaks show up only now."""
        errors: list[Problem] = []
        for host in self.hosts:
            if id(host) in self._closed_hosts:
                continue
            self._closed_hosts.add(id(host))
            try:
                host.close()
            except Exception as exc:
                errors.append(Problem("invariant", f"host.close() raised {type(exc).__name__}: {exc}"))
        self.problems.extend(errors)
        return errors + self.run_checks()

    def finish(self) -> None:
        """Leave the test's scope and disarm whatever is still armed (always called)."""
        if self._token is not None:
            token, self._token = self._token, None
            try:
                faults.deactivate(token)
            except (ValueError, RuntimeError):  # the scope was left in another context
                pass
        self.scope.close()

    def touched(self) -> bool:
        """The test used the model, armed a fault or reached a point (else its record is empty)."""
        sc = self.scope
        return bool(self.used_model or sc.history or sc.census)

    def trace_lines(self) -> list[str]:
        """What the test did, as the determinism check compares it: every recorded hit with its
        context and what fired, the faults fired, the problems found (state and WARN texts)."""
        sc = self.scope
        lines = [f"hit {e.point}#{e.nth}+{e.count} {sorted(e.context.items())!r} fired={e.fired}@{e.fired_offset}"
                 for e in sc.trace]
        if sc.trace_dropped:
            lines.append(f"({sc.trace_dropped} hits not recorded)")
        lines += [f"fired {f.label()} {sorted(f.context.items())!r}" for f in sc.fired]
        lines += [f"{p.kind}: {p.text}" for p in self.problems]
        return lines

    # --- model objects ------------------------------------------------------------------------
    def add_host(self, host: Any) -> Any:
        """Check and close ``host`` with the test (once, however often it is added)."""
        self.used_model = True
        if any(h is host for h in self.hosts):
            return host
        self.hosts.append(host)
        self._warn_seen[id(host)] = len(list(getattr(host, "warnings", [])))
        return host

    def add_file(self, gmem: Any) -> Any:
        self.used_model = True
        self.files.append(gmem)
        return gmem


class FaultsFixture:
    """The ``faults`` fixture: arm faults in the test body; they end with the test.

    ``faults.inject(point, kind, nth=..., ...)`` and ``faults.arm(spec)`` arm in the test's own
    scope (see :func:`faults.inject`), from any thread: in the test's context (or a scope opened
    inside it) they arm in the current scope, anywhere else (a thread the test started) in the
    test's scope object itself. ``trace``, ``fired``, ``census`` and ``unfired()`` read what the
    test's code reached so far.
    """

    def __init__(self, run: TestRun, name: str) -> None:
        self._run = run
        self._source = f"faults fixture in {name}"

    @property
    def scope(self) -> faults.Scope:
        return self._run.scope

    def _in_test_scope(self, fn: Callable[[], _T]) -> _T:
        scope = self._run.scope
        if any(s is scope for s in faults.current().chain()):
            return fn()  # the test's context, or a scope opened inside it
        token = faults.activate(scope)  # another thread: arm in the test's scope object
        try:
            return fn()
        finally:
            faults.deactivate(token)

    def inject(self, point: str, kind: faults.Kind | str, **kwargs: Any) -> faults.Arming:
        kwargs.setdefault("source", self._source)
        return self._in_test_scope(lambda: faults.inject(point, kind, **kwargs))

    def arm(self, spec: str, *, source: str | None = None) -> list[faults.Arming]:
        """Arm faults written in the text grammar."""
        req = ArmRequest(source=source or self._source, spec=spec)
        return self._in_test_scope(req.arm)

    @property
    def trace(self) -> list[faults.TraceEvent]:
        return list(self._run.scope.trace)

    @property
    def fired(self) -> list[faults.Fired]:
        return list(self._run.scope.fired)

    @property
    def census(self) -> Mapping[str, int]:
        """Hits per point so far in this test."""
        return dict(self._run.scope.census)

    def reached(self, point: str) -> int:
        return self._run.scope.census.get(point, 0)

    def unfired(self) -> list[faults.Arming]:
        return self._run.scope.unfired()

    def __repr__(self) -> str:
        return f"<faults for {self._run.nodeid}: {len(self.scope.armings())} armed, {len(self.fired)} fired>"


class GmemFactory:
    """The ``gmem_factory`` fixture: more guest_memfd files, VMs and hosts for one test.

    ``gmem_factory(size="2M", page_size="2M", ...)`` makes a file on the test's VM (the
    ``gmem_vm`` fixture) unless ``vm=`` is given; arguments default to the ``gmem`` marker's.
    ``gmem_factory.host(revision=..., hugetlb=...)`` and ``gmem_factory.vm(host, vm_type)`` make
    more of those. Everything is closed and checked after the test like the fixtures.
    """

    def __init__(
        self,
        run: TestRun,
        params: GmemParams,
        make_host: Callable[[str | None, Mapping[str, int] | None], Any],
        default_vm: Callable[[], Any],
    ) -> None:
        self._run = run
        self.params = params
        self._make_host = make_host
        self._default_vm = default_vm

    def host(self, revision: str | None = None, hugetlb: Mapping[str, int] | None = None) -> Any:
        return self._make_host(revision, hugetlb)  # registered with the test by the plugin

    def vm(self, host: Any = None, vm_type: str | None = None) -> Any:
        if host is None:
            host = self.host()
        return host.create_vm(**self.params.vm_options(vm_type))

    def __call__(
        self,
        size: int | str | None = None,
        *,
        page_size: str | None = None,
        mmap: bool | None = None,
        init_private: bool | None = None,
        vm: Any = None,
        **extra: Any,
    ) -> Any:
        p = self.params
        target = vm if vm is not None else self._default_vm()
        gmem = target.create_guest_memfd(
            size=p.size if size is None else size,
            mmap=p.mmap if mmap is None else mmap,
            init_private=p.init_private if init_private is None else init_private,
            page_size=p.page_size if page_size is None else page_size,
            **extra,
        )
        return self._run.add_file(gmem)
