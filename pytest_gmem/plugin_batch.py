"""Batched sweep items (``--gmem-sweep-batch``): one pytest item sets a swept test's fixtures up
once and runs a run of its scenarios in-process, each from a copy of that state (the pytest-free
``sweep.run_resumed``), logging one report per scenario under the node id of the scenario's own
item (which a scenario id on the command line still collects: see ``Sweeps``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from ._keys import RUN, SETTINGS, is_skip, revision_of

if TYPE_CHECKING:
    from .sweep import Scenario


#: Fixtures whose value is bound to the item that set it up (its faults scope, its request,
#: its seeded generator): a test that uses one itself runs each scenario as its own item...
BOUND_ARGS = frozenset({"faults", "gmem_factory", "faker", "request"})
#: ... and so does a test that uses these anywhere (a fixture arming faults at setup).
BOUND_FIXTURES = frozenset({"faults", "faker"})
BATCH_HELP = (
    "Fault sweeps in batches: one pytest item runs up to N scenarios of a test in-process, each "
    "from a copy of the state the item's fixtures set up (node id test_x[sweep-POINT-KIND-1..N], "
    "several points joined by '+'); "
    "every scenario still gets its own report, failure section, reproduce line, JSON record and "
    "coverage context. 'off': one item per scenario (also whenever a sweep item's id is given on "
    "the command line, and for tests that use a fixture with a teardown, 'faults', "
    "'gmem_factory', 'faker' or a skip/xfail marker). Default: 64. See docs/sweeps.md."
)


def parse_batch(value: str | None) -> int | None:
    """``--gmem-sweep-batch``: a size >= 2, or None for 'off'."""
    if value is None or str(value).strip().lower() in ("off", "0", "1"):
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        raise pytest.UsageError(f"gmem: --gmem-sweep-batch={value!r}: give a number of scenarios (>= 2) or 'off'"
                                ) from None
    if n < 0:
        raise pytest.UsageError(f"gmem: --gmem-sweep-batch={value!r}: give a number of scenarios (>= 2) or 'off'")
    return n


def not_resumable(item: pytest.Function) -> str | None:
    """Why a test's scenarios cannot run from a copy of one set-up state (None: they can)."""
    import inspect

    for name in ("skip", "skipif", "xfail"):
        if item.get_closest_marker(name) is not None:
            return f"a {name} marker"
    info = item._fixtureinfo
    for name in BOUND_ARGS.intersection(info.argnames):
        return f"the test takes {name!r}"
    for name in item.fixturenames:
        if name in BOUND_FIXTURES:
            return f"fixture {name!r}"
        defs = info.name2fixturedefs.get(name)
        if not defs:
            continue
        fd = defs[-1]
        if fd.scope == "function" and (inspect.isgeneratorfunction(fd.func) or inspect.isasyncgenfunction(fd.func)):
            return f"fixture {name!r} has a teardown"
    if inspect.iscoroutinefunction(item.obj):
        return "an async test"
    return None


def batches(scenarios: list[Scenario], size: int) -> list[list[Scenario]]:
    """Consecutive scenarios (as ``plan`` lists them) of one revision whose faults differ only in
    the last one (any point, kind or nth: at depth 2, the rollback faults of one first fault), in
    chunks of at most ``size``. One item per chunk sets the fixtures up once for all of them."""
    out: list[list[Scenario]] = []
    for s in scenarios:
        last = out[-1][-1] if out else None
        if (last is not None and len(out[-1]) < size and last.faults[:-1] == s.faults[:-1]
                and last.revision == s.revision):
            out[-1].append(s)
        else:
            out.append([s])
    return out


def batch_ident(group: list[Scenario]) -> str:
    """``[REV-]sweep-POINT-KIND-FIRST..LAST`` for a run of one point and kind; runs of several
    joined by ``+`` (``sweep-P1-K1-1..20+P2-K2-1``); at depth 2 the first fault comes first
    (``sweep-P1-K1-3-rollback-P2-K2-1..5``)."""
    parts: list[tuple[str, int, int]] = []  # (the last fault's ident without its nth, first, last)
    for s in group:
        f = s.faults[-1]
        stem = f.ident().removesuffix(f"-{f.nth}")
        if parts and parts[-1][0] == stem and parts[-1][2] + 1 == f.nth:
            parts[-1] = (stem, parts[-1][1], f.nth)
        else:
            parts.append((stem, f.nth, f.nth))
    runs = "+".join(f"{stem}-{a}" if a == b else f"{stem}-{a}..{b}" for stem, a, b in parts)
    head = group[0].ident()
    last = group[0].faults[-1].ident()
    return f"{head.removesuffix(last)}{runs}"


def scale_timeout(batch: pytest.Function, base: pytest.Function, scenarios: int) -> None:
    """pytest-timeout: a batch of N scenarios may take N times the test's own timeout (each
    scenario's item would have had it), so a sweep that passes one item per scenario does not
    time out batched. Nothing without pytest-timeout, or without a timeout for the test."""
    plugin = base.config.pluginmanager.get_plugin("timeout")
    if plugin is None:
        return
    marker = base.get_closest_marker("timeout")
    if marker is not None:
        timeout = marker.args[0] if marker.args else marker.kwargs.get("timeout")
        method, func_only = marker.kwargs.get("method"), marker.kwargs.get("func_only", False)
    else:
        settings = getattr(plugin, "get_env_settings", None)
        if settings is None:  # pragma: no cover - another pytest-timeout
            return
        env = settings(base.config)
        timeout, method, func_only = env.timeout, env.method, env.func_only
    try:
        seconds = float(timeout) if timeout is not None else 0.0
    except (TypeError, ValueError):
        return  # pytest-timeout reports a bad marker value itself, on the test's own item
    if seconds > 0:
        # first among the batch's own markers: the closest, before the one the function carries
        batch.add_marker(pytest.mark.timeout(seconds * scenarios, method=method, func_only=func_only), append=False)


_RUN_END = re.compile(r"-(\d+)(?:\.\.(\d+))?$")


def scenarios_in(nodeid: str) -> int:
    """How many scenarios the item ``nodeid`` runs, read from its id (what :func:`batch_ident`
    wrote): an xdist controller knows only the workers' node ids when it counts the tests."""
    ident = nodeid.rpartition("[")[2].removesuffix("]") if nodeid.endswith("]") else ""
    start = ident.rfind("sweep-")
    if start < 0:
        return 1
    total = 0
    for run in ident[start:].split("+"):
        m = _RUN_END.search(run)
        if m is None:
            return 1  # not an id this plugin made
        total += int(m.group(2)) - int(m.group(1)) + 1 if m.group(2) else 1
    return max(total, 1)


class SweepBatch(pytest.Function):
    """A batch of sweep scenarios of one test: its fixtures are set up once, as for the test's own
    item, and :meth:`runtest` runs each scenario from a copy of what they built (the pytest-free
    :func:`pytest_gmem.sweep.run_resumed`), logging one report per scenario under the node id of
    the scenario's own item."""

    gmem_scenarios: list[Scenario]
    gmem_tolerated: frozenset[str]
    gmem_reports: list[Any]  # on an xdist worker: the scenarios' reports, serialized
    gmem_base: pytest.Function  # the swept test's own item
    gmem_flags: Callable[[Scenario], str]  # the options that make a scenario's own item exist

    def runtest(self) -> None:
        run_batch(self)


def run_batch(item: SweepBatch) -> None:
    """Run every scenario of ``item`` from a copy of its set-up state and log one report each."""
    import contextlib
    import functools
    import time

    from .sweep import ItemState, Resume, run_resumed

    run = item.stash[RUN]
    info = item._fixtureinfo
    values: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    for name in info.argnames:  # what the test receives; the rest was only for the setup
        value = item.funcargs[name]
        defs = info.name2fixturedefs.get(name)
        (values if not defs or defs[-1].scope == "function" else shared)[name] = value
    resume = Resume(item.obj, tuple(info.argnames), values, shared, list(run.hosts), list(run.files),
                    dict(run._warn_seen), list(run.requests), run.allow, run.check, run.seed, is_skip,
                    # the points the fixtures' setup reached: every scenario's own item reaches them too
                    dict(run.scope.census), tuple(run.scope.trace), run.scope.trace_dropped)
    base = item.gmem_base
    cov = item.config.pluginmanager.get_plugin("gmem-coverage")
    keywords = {k: 1 for k in item.keywords}
    ihook = item.ihook  # a property that looks the conftest plugins up on every access
    on_fired = functools.partial(_fault_fired, ihook, item)
    describe = functools.partial(_describe_failure, item, item.config.pluginmanager.get_plugin("gmem-trace"))
    worker = hasattr(item.config, "workerinput")
    # The scenarios run inside the batch's call phase, where pytest captures the output: each
    # takes what its body printed, and its report is logged with the capture off (the terminal
    # reporter's progress letter and, with -x, the session's stop come from there).
    capman = item.config.pluginmanager.getplugin("capturemanager")
    capturing = capman is not None and capman.is_globally_capturing()
    session = item.session
    for scenario in item.gmem_scenarios:
        name = clone_name(base, scenario.ident())
        nodeid = f"{base.parent.nodeid}::{name}" if base.parent is not None else name
        state = ItemState(scenario, f"fault_sweep on {base.name}", base.nodeid,
                          tolerated=item.gmem_tolerated, flags=item.gmem_flags(scenario))
        start = time.time()
        t0 = time.perf_counter()
        result = run_resumed(
            resume, state, nodeid, state.arm_requests(),
            on_fired=on_fired,
            around_body=functools.partial(cov.scenario, nodeid) if cov is not None else None,
            describe=describe,
        )
        report = scenario_report(item, result, nodeid, name, keywords)
        report.duration, report.start, report.stop = time.perf_counter() - t0, start, time.time()
        if capturing:
            out, err = capman.read_global_capture()
            report.sections[:0] = [(f"Captured {what} call", text) for what, text in (("stdout", out), ("stderr", err))
                                   if text]
        if worker:  # logged by the controller, which decides about -x
            item.gmem_reports.append(item.config.hook.pytest_report_to_serializable(config=item.config,
                                                                                   report=report))
        else:
            with capman.global_and_fixture_disabled() if capturing else contextlib.nullcontext():
                ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_gmem_test_outcome(item=item, outcome=report.gmem["outcome"], record=report.gmem)
        if session.shouldfail or session.shouldstop:  # -x / --maxfail reached: no further scenario
            break


def _describe_failure(item: pytest.Item, hider: Any, exc: BaseException) -> Any:
    """What the body raised, as pytest shows a call's failure: the library's frames hidden (the
    trace hider's ``makereport`` never sees a batched scenario), rendered while the model is as
    the body left it (the frames' locals are shown as they are when rendered)."""
    if hider is not None:
        hider.mark(exc)
    return item.repr_failure(pytest.ExceptionInfo.from_exception(exc))


def _fault_fired(ihook: Any, item: pytest.Item, fired: Any) -> None:
    ihook.pytest_gmem_fault_fired(item=item, fired=fired)


def clone_name(item: pytest.Function, extra_id: str) -> str:
    """The name :meth:`_clone` gives ``item``'s clone with ``extra_id``."""
    callspec = getattr(item, "callspec", None)
    ids = [*(callspec._idlist if callspec is not None else ()), extra_id]
    return f"{item.originalname}[{'-'.join(ids)}]"


def scenario_report(item: SweepBatch, r: Any, nodeid: str, name: str, keywords: dict[str, Any]) -> pytest.TestReport:
    """The one report of a batched scenario, as its own item's reports would add up: the
    call's failure (or the one found when its hosts were closed), the tolerated outcomes as
    xfail, the gmem sections, and the record (``report.gmem``; its scope started with the batch
    setup's hits, so the points it reached count them, as its own item's setup would)."""
    from .report import (
        build_record,
        combine_outcome,
        describe_state,
        format_trace,
        interesting,
        problems_text,
        section_text,
    )
    from .testrun import root_leak_text

    settings = item.config.stash[SETTINGS]
    run, state = r.run, r.state
    record = build_record(run, settings.seed, settings.revision if settings.revision_source != "default" else None,
                          [f.text for f in settings.faults])
    record["reproduce"] += state.flags
    sections: list[tuple[str, str]] = []
    if interesting(record):
        sections.append(("Captured gmem faults call", section_text(record)))

    def problems(found: list[Any], state_map: str | None = None) -> str:
        state_map = describe_state(run.hosts, run.files) if state_map is None else state_map
        return problems_text(nodeid, found, state_map, format_trace(run.scope), record["reproduce"])

    texts = [root_leak_text(nodeid, r.leaked)] if r.leaked else []
    if r.after_body:  # with the state map as the check after the body saw it, as its own item shows
        texts.append(problems(r.after_body, r.after_body_state))
    longrepr: Any = None
    failed = False
    if r.exc is not None and not state.body_skipped:
        longrepr = r.exc_repr  # rendered by run_batch's ``describe`` before the hosts closed
        failed = True
        if texts:
            sections.append(("Captured gmem check call", "\n\n".join(texts)))
    elif texts:
        longrepr, failed = "\n\n".join(texts), True
    elif not state.body_skipped:
        failure = state.failure_after_body()
        if failure:
            longrepr, failed = failure, True
    closing = problems(r.at_close) if r.at_close and not r.earlier else None
    outcome = state.outcome(run.problems, run.hosts)
    extra: dict[str, Any] = {}
    call = "failed" if failed else "passed"
    if state.body_skipped:
        call = "skipped"
        msg = str(getattr(r.exc, "msg", "") or r.exc)
        if isinstance(r.exc, pytest.xfail.Exception):
            extra["wasxfail"], longrepr = f"reason: {msg}", None
        else:
            longrepr = (str(item.path), (item.location[1] or 0) + 1, f"Skipped: {msg}")
    elif failed and outcome in state.tolerated:
        call, longrepr = "skipped", None
        extra["wasxfail"] = f"gmem sweep: {outcome} ({state.detail or outcome})"[:200]
    teardown = "passed"
    if closing is not None:
        if outcome in state.tolerated and outcome in ("warn", "invariant") and state.phase_failed is None:
            sections.append(("gmem sweep", f"{outcome} at teardown, tolerated: {closing}"))
        elif call == "failed":
            teardown = "failed"
            sections.append(("gmem check teardown", closing))
        else:
            teardown = "failed"
            longrepr = f"at teardown (the hosts closed):\n{closing}"
    record["outcome"] = combine_outcome({"call": (call, "wasxfail" in extra), "teardown": (teardown, False)})
    word = "failed" if teardown == "failed" else call
    if word == "failed":
        extra.pop("wasxfail", None)
    record["sweep"] = state.record(outcome, run.problems, run.hosts, revision_of(item))
    record["sweep"]["nodeid"] = nodeid
    path, lineno, domain = item.location
    where = domain[: len(domain) - len(item.name)] + name if domain.endswith(item.name) else name
    report = pytest.TestReport(nodeid, (path, lineno, where), keywords, word,  # type: ignore[arg-type]
                               longrepr, "call", sections, **extra)
    report.gmem = record  # type: ignore[attr-defined]
    report.gmem_scenario = True  # type: ignore[attr-defined]
    return report


class JunitBatches:
    """``--junitxml``: a batch item is no test of its own (its scenarios' reports are, each its
    own ``<testcase>``), so its passing testcase is taken out of the file, as it is out of
    pytest's counts. A batch whose own setup or teardown failed (a fixture's error) keeps its
    testcase, which carries that error. Reaches into ``LogXML``'s bookkeeping (pytest 8-9): if
    that changes, the batch's testcase stays, and nothing else is affected."""

    def __init__(self, xml: Any) -> None:
        self.xml = xml
        self.passed: dict[tuple[str, Any], Any] = {}  # a batch whose call passed: its testcase

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # trylast: after LogXML's own implementation saw the report
        if not getattr(report, "gmem_batch", False) or getattr(report, "gmem_scenario", False):
            return
        key = (report.nodeid, getattr(report, "node", None))
        try:
            if report.failed:
                self.passed.pop(key, None)
            elif report.when == "call" and report.passed:
                # LogXML keys its testcases by the report's ``id`` (pytest 9) or node id (8)
                ident = getattr(report, "id", report.nodeid)
                self.passed[key] = self.xml.node_reporters.get((ident, key[1]),
                                                               self.xml.node_reporters.get(key))
            elif report.when == "teardown" and key in self.passed:
                reporter = self.passed.pop(key)
                if reporter is not None and reporter in self.xml.node_reporters_ordered:
                    self.xml.node_reporters_ordered.remove(reporter)
                    self.xml.stats["passed"] -= 1
        except (AttributeError, KeyError, TypeError):  # pragma: no cover - another LogXML
            return
