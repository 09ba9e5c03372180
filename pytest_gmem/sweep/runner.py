"""Sweeps without pytest: :func:`run_sweep` over a ``setup`` + ``op`` pair, and
:func:`run_resumed`, one scenario of a batched sweep item run from a copy of its set-up state."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faults

from .census import BodyCensus
from .outcome import ErrorWatch, ItemState, classify, is_kernel_bug
from .spec import ROLLBACK, Scenario, SweepSpec, plan


@dataclass(frozen=True)
class Result:
    """One scenario of :func:`run_sweep` and how it ended."""

    scenario: Scenario
    outcome: str
    detail: str = ""


def _hosts_of(state: Any) -> list[Any]:
    if hasattr(state, "user_errors"):
        return [state]
    if isinstance(state, Mapping):
        return [v for v in state.values() if hasattr(v, "user_errors")]
    if isinstance(state, (tuple, list)):
        return [v for v in state if hasattr(v, "user_errors")]
    host = getattr(state, "host", None)
    return [host] if host is not None else []


def run_scenario(state: Any, op: Callable[[Any], None], scenario: Scenario,
                 hosts: Callable[[Any], list[Any]] = _hosts_of) -> Result:
    """Run ``op(state)`` with the scenario's faults armed (in a fresh scope) and classify it:
    an exception from ``op`` that the model returned to the caller is the "error reached the
    caller" of a clean scenario; any other exception is a failure."""
    hs = hosts(state)
    warns = {id(h): len(h.warnings) for h in hs}
    watch = ErrorWatch()
    body_failed = False
    detail = ""
    kbug = False
    with faults.scope(inherit=False) as sc:
        sc.listeners.append(lambda _f: watch.fired(hs))
        armings = [faults.inject(f.point, f.kind, nth=f.nth, when=f.when(), source="sweep") for f in scenario.faults]
        try:
            op(state)
        except BaseException as exc:  # what the op raised is the scenario's result
            kbug = is_kernel_bug(exc)
            caller_saw = any(e.error == type(exc).__name__ for e in watch.errors_since(hs))
            if not caller_saw and not kbug:
                body_failed = True
            detail = f"{type(exc).__name__}: {exc}"
        fired = bool(armings) and armings[0].fired > 0
    problems: list[str] = []
    for h in hs:
        if h.violations():
            problems.append("invariant")
        if len(h.warnings) > warns[id(h)]:
            problems.append("warn")
            detail = detail or str(h.warnings[-1])
    outcome = classify(fired=fired, kernel_bug=kbug, problems=problems, body_failed=body_failed,
                       error_after_fire=bool(watch.errors_since(hs)))
    return Result(scenario, outcome, detail)


#: every ENOMEM, every nth, depth 1
_DEFAULT_SPEC = SweepSpec()


def run_sweep(
    setup: Callable[[], Any],
    op: Callable[[Any], None],
    spec: SweepSpec = _DEFAULT_SPEC,
    *,
    revision: str | None = None,
    resume: bool = True,
) -> list[Result]:
    """Sweep ``op`` over every reachable fault, without pytest.

    ``setup()`` builds the state (a ``Host``, or a tuple/mapping holding hosts and files) and is
    not swept; ``op(state)`` is. A census run of ``op`` finds the reachable (point, nth); then
    each scenario runs ``op`` on a fresh state: with ``resume`` a ``copy.deepcopy`` of the state
    ``setup`` built once (snapshot-and-resume: the setup prefix is paid once), else a new
    ``setup()`` per scenario."""
    base_state = setup()
    with faults.scope(inherit=False, record=True) as sc:
        bc = BodyCensus(sc)
        op(copy.deepcopy(base_state))
        census = bc.stop()
    base = Scenario((), revision)
    todo = plan(spec, census.hits, base)
    results = []
    for scenario in todo:
        state = copy.deepcopy(base_state) if resume else setup()
        results.append(run_scenario(state, op, scenario))
    if spec.depth == 2:
        for parent in todo:
            state = copy.deepcopy(base_state) if resume else setup()
            with faults.scope(inherit=False, record=True) as sc:
                bc = BodyCensus(sc)
                f = parent.faults[0]
                faults.inject(f.point, f.kind, nth=f.nth, source="sweep census")
                try:
                    op(state)
                except Exception:  # the census only counts the rollback hits
                    pass
                rb = bc.stop().phase_hits.get(ROLLBACK, {})
            for child in plan(spec, rb, parent, ROLLBACK):
                state = copy.deepcopy(base_state) if resume else setup()
                results.append(run_scenario(state, op, child))
    return results


# --- batched scenarios: many scenarios in one item, each resumed from the item's set-up state --
@dataclass
class Resume:
    """What every scenario of a batch starts from: the batch item's function-scoped fixture
    values after its setup (``values``: deep-copied per scenario, together, so that what they
    share stays shared), the values of wider-scoped fixtures (``shared``: never copied), the
    hosts and files the setup built with the WARN count each started from, and the test's own
    arming requests (session and marker faults), ``allow_warn`` patterns, check flag and seed."""

    call: Callable[..., Any]
    argnames: tuple[str, ...]
    values: dict[str, Any]
    shared: dict[str, Any]
    hosts: list[Any]
    files: list[Any]
    warn_seen: dict[int, int]
    requests: Sequence[Any]
    allow: Sequence[Any]
    check: bool
    seed: int
    is_skip: Callable[[BaseException], bool]
    #: What the setup's hits left in the batch item's scope: each scenario's scope starts with them,
    #: so that its census, trace and hit numbers are those its own item would have.
    setup_census: Mapping[str, int] = field(default_factory=dict)
    setup_trace: Sequence[Any] = ()
    setup_trace_dropped: int = 0
    _blob: bytes | None = None
    _pickled: bool | None = None

    def fresh(self) -> tuple[dict[str, Any], list[Any], list[Any]]:
        """A copy of (values, hosts, files), sharing ``shared``: unpickled from one pickle of the
        set-up state (taken at the first call; a third of a ``deepcopy``'s cost), or deep-copied
        when something in it does not pickle."""
        import io
        import pickle

        shared = {id(v): k for k, v in self.shared.items()}
        state = (self.values, self.hosts, self.files)
        if self._pickled is None:
            buf = io.BytesIO()
            pickler = pickle.Pickler(buf, pickle.HIGHEST_PROTOCOL)
            pickler.persistent_id = lambda obj: shared.get(id(obj))  # type: ignore[method-assign]
            try:
                pickler.dump(state)
                self._blob, self._pickled = buf.getvalue(), True
            except Exception:  # a lambda, a lock, an open file: copy it the slow way
                self._pickled = False
        if self._pickled and self._blob is not None:
            if not shared:
                return pickle.loads(self._blob)  # type: ignore[no-any-return]
            unpickler = pickle.Unpickler(io.BytesIO(self._blob))
            unpickler.persistent_load = self.shared.__getitem__  # type: ignore[method-assign]
            return unpickler.load()  # type: ignore[no-any-return]
        memo: dict[int, Any] = {i: self.shared[k] for i, k in shared.items()}
        return copy.deepcopy(state, memo)


@dataclass
class ResumedRun:
    """One scenario of a batch after it ran: its test run, its sweep state, what the body raised,
    the problems found after the body and when the hosts were closed, and the faults armed in
    the root scope meanwhile (disarmed)."""

    state: ItemState
    run: Any  # testrun.TestRun
    exc: BaseException | None
    after_body: list[Any]
    at_close: list[Any]
    earlier: bool  # problems were found after the body (the close's are then not a new failure)
    leaked: list[faults.Arming]
    after_body_state: str = ""  # the state map when ``after_body`` was found (before the close)
    exc_repr: Any = None  # ``describe(exc)``, taken before the close (a traceback shows live locals)


def run_resumed(resume: Resume, state: ItemState, nodeid: str, requests: Sequence[Any],
                on_fired: Callable[[faults.Fired], None] | None = None,
                around_body: Callable[[], Any] | None = None,
                describe: Callable[[BaseException], Any] | None = None) -> ResumedRun:
    """Run one scenario of a batch as its own sweep item would, without pytest: a fresh test run
    (scope, seed, armings: ``resume.requests`` and the scenario's ``requests``), the test function
    on a deep copy of the set-up fixture values, the checks after the body, the hosts closed and
    checked again. ``around_body``: a context manager factory wrapped around the body (coverage
    contexts). ``describe``: called with what the body raised (not a skip) once the checks after
    the body ran and before the hosts are closed, as pytest renders a call's failure; its result is
    ``exc_repr``."""
    import contextlib

    from ..testrun import TestRun

    values, hosts, files = resume.fresh()
    run = TestRun(nodeid, resume.seed)
    run.scope.census.update(resume.setup_census)
    run.scope.trace.extend(resume.setup_trace)
    run.scope.trace_dropped = resume.setup_trace_dropped
    for host, twin in zip(resume.hosts, hosts, strict=True):
        if hasattr(twin, "check_rollback"):
            twin.check_rollback = True  # a swept error must leave the file as it was (invariant 7)
        run.add_host(twin)
        run._warn_seen[id(twin)] = resume.warn_seen.get(id(host), 0)
    run.files.extend(files)
    run.used_model = bool(run.hosts or run.files)
    run.requests = [*resume.requests, *requests]
    run.allow = resume.allow
    run.check = resume.check
    exc: BaseException | None = None
    run.start()
    try:
        if on_fired is not None:
            run.scope.listeners.append(on_fired)
        run.scope.listeners.append(lambda fired: state.fired_fault(fired, run.hosts))
        run.arm()
        state.begin_body(run.scope)
        with around_body() if around_body is not None else contextlib.nullcontext():
            try:
                resume.call(**{a: values[a] if a in values else resume.shared[a] for a in resume.argnames})
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # what the body raised is the scenario's result
                exc = e
                state.body_raised(e, skipped=resume.is_skip(e))
        state.end_body(run.scope, run.hosts)
        after = run.end_body()
        after_state = ""
        if after:  # the state map as the check saw it: the close below changes it
            from ..report import describe_state

            after_state = describe_state(run.hosts, run.files)
        exc_repr = describe(exc) if describe is not None and exc is not None and not state.body_skipped else None
        leaked = run.root_leaks()
        earlier = bool(run.problems)
        at_close = run.close_hosts()
    finally:
        run.finish()
    return ResumedRun(state, run, exc, after, at_close, earlier, leaked, after_state, exc_repr)
