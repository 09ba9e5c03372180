"""pytest-gmem: fixtures, markers and options over the guest_memfd model and ``faults``.

Hooks, options, markers and fixtures only; the logic lives in pytest-free modules:
``config`` (settings and marker arguments), ``testrun`` (a test's faults scope and checks),
``report`` (sections, summary, JSON), ``hooks`` (this plugin's hookspecs).

Life of a test: at setup a fresh recording faults scope is made current and the markers are
checked; just before the body the marker and ``--gmem-fault`` faults are armed; after the body
everything is disarmed and every host the test built is checked (``host.check()`` and its WARN
log); at the end of teardown the hosts are closed and checked again, and the scope is left and
closed, whatever happened before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import warnings
from collections.abc import Generator, Mapping, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any

import pytest

from . import config as cfg
from .report import (
    Summary,
    build_record,
    combine_outcome,
    describe_state,
    format_catalog,
    format_trace,
    interesting,
    problems_text,
    section_text,
)
from .testrun import FaultsFixture, GmemFactory, Problem, TestRun

if TYPE_CHECKING:
    from .sweep import Census, ItemState, Scenario, SweepSpec

SETTINGS = pytest.StashKey[cfg.Settings]()
SESSION_FAULTS = pytest.StashKey[list[cfg.ArmRequest]]()
RUN = pytest.StashKey[TestRun]()
PARAMS = pytest.StashKey[cfg.GmemParams]()
PHASES = pytest.StashKey[dict[str, tuple[str, bool]]]()
MODEL_FIXTURES = frozenset({"gmem_host", "gmem_vm", "gmem", "gmem_factory"})
SWEEP = pytest.StashKey["ItemState"]()


# --- options, markers, settings -----------------------------------------------------------------
def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gmem", "guest_memfd model and fault injection (pytest-gmem)")
    group.addoption("--gmem-revision", dest="gmem_revision", metavar="NAME", default=None, help=cfg.REVISION_HELP)
    group.addoption(
        "--gmem-fault", dest="gmem_faults", metavar="SPEC", action="append", default=[], help=cfg.FAULT_HELP
    )
    group.addoption("--gmem-seed", dest="gmem_seed", metavar="N", default=None, help=cfg.SEED_HELP)
    group.addoption("--gmem-points", dest="gmem_points", action="store_true", default=False, help=cfg.POINTS_HELP)
    group.addoption("--gmem-report", dest="gmem_report", metavar="PATH", default=None, help=cfg.REPORT_HELP)
    group.addoption("--gmem-sweep", dest="gmem_sweep", action="store_true", default=False, help=cfg.SWEEP_HELP)
    group.addoption(
        "--gmem-error-paths", dest="gmem_error_paths", metavar="PATH", nargs="?", const="", default=None,
        help="Report which of the model's error-handling branches each injected fault reached (terminal "
        "section; with =PATH.json also a JSON file). Measures in-process, or reads the running coverage "
        "(pytest-cov with --cov=pytest_gmem). See docs/error-paths.md.",
    )
    group.addoption(
        "--gmem-cov-context", dest="gmem_cov_context", choices=("auto", "on", "off"), default="auto",
        help="Label coverage.py data '{nodeid}|run|fault={point}:{KIND}#{nth}' from the moment a fault fires. "
        "auto (default): with pytest-cov's --cov-context=test or --gmem-error-paths; on: whenever coverage "
        "is measuring; off: never.",
    )
    from .sweep import COMPARE_HELP, SWEEP_DEPTH_HELP

    group.addoption("--gmem-compare", dest="gmem_compare", metavar="REVS", default=None, help=COMPARE_HELP)
    group.addoption("--gmem-sweep-depth", dest="gmem_sweep_depth", type=int, choices=(1, 2), default=1,
                    help=SWEEP_DEPTH_HELP)
    parser.addini("gmem_revision", cfg.REVISION_HELP, default="")
    parser.addini("gmem_faults", cfg.FAULT_HELP, type="linelist", default=[])
    parser.addini("gmem_seed", cfg.SEED_HELP, default="")
    parser.addini("gmem_report", cfg.REPORT_HELP, default="")


def _known_revisions() -> Sequence[str]:
    revisions = getattr(import_module("pytest_gmem.model"), "REVISIONS", None)
    return tuple(revisions) if revisions else cfg.FALLBACK_REVISIONS


def pytest_configure(config: pytest.Config) -> None:
    for help_line in cfg.MARKER_HELP.values():
        config.addinivalue_line("markers", help_line)
    names = ("gmem_revision", "gmem_faults", "gmem_seed", "gmem_report")
    cli = {n: config.getoption(n) for n in names}
    ini = {n: config.getini(n) for n in names}
    workerinput: Mapping[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and "gmem_seed" in workerinput:
        cli["gmem_seed"] = str(workerinput["gmem_seed"])  # the controller's seed, same on all workers
    try:
        settings = cfg.resolve(
            cli,
            os.environ,
            ini,
            known_revisions=_known_revisions,
            random_seed=lambda: random.randrange(1 << 32),
        )
        session_faults = [cfg.ArmRequest(source=f"{f.source}", spec=f.text) for f in settings.faults]
        cfg.validate(session_faults)
    except cfg.ConfigError as exc:
        raise pytest.UsageError(f"gmem: {exc}") from None
    config.stash[SETTINGS] = settings
    config.stash[SESSION_FAULTS] = session_faults
    config.pluginmanager.register(_Collector(config), "gmem-collector")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(settings.seed), "gmem-xdist")
    if config.pluginmanager.hasplugin("faker"):
        config.pluginmanager.register(_FakerSeed(), "gmem-faker")
    config.pluginmanager.register(_Sweeps(config), "gmem-sweeps")
    paths = config.getoption("gmem_error_paths")
    if paths and not paths.endswith(".json"):
        raise pytest.UsageError(f"gmem: --gmem-error-paths={paths}: the report path must end in .json "
                                "(write --gmem-error-paths alone, or with '=', before test paths)")
    cov_context = config.getoption("gmem_cov_context")
    if paths is not None or cov_context == "on" or (
        cov_context == "auto" and getattr(config.option, "cov_context", None) == "test"
    ):
        config.pluginmanager.register(_CoverageHooks(config, paths), "gmem-coverage")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.option.gmem_points:
        return None
    import faults

    config._do_configure()  # as pytest's own --markers does
    try:
        config.get_terminal_writer().line(format_catalog(faults.catalog()))
    finally:
        config._ensure_unconfigure()
    return 0


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[SETTINGS]
    lines = [f"gmem: --gmem-seed={settings.seed}"]
    if settings.revision_source != "default" or settings.faults:
        extra = [f"revision={settings.revision} (from {settings.revision_source})"]
        extra += [f"fault {f.text!r} (from {f.source})" for f in settings.faults]
        lines.append("gmem: " + ", ".join(extra))
    return lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `-m gmem` selects every test that uses the model, marked or not.
    for item in items:
        if MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())) and not item.get_closest_marker("gmem"):
            item.add_marker(pytest.mark.gmem)


# --- the life of one test -------------------------------------------------------------------
def _read_markers(item: pytest.Item) -> tuple[cfg.GmemParams, list[cfg.ArmRequest], list[Any]]:
    def where(marker: str) -> str:
        return f"marker {marker} on {item.name}"

    gmem_marks = [(m.args, m.kwargs) for m in reversed(list(item.iter_markers("gmem")))]
    params = cfg.gmem_params(gmem_marks, where("gmem"), _known_revisions)
    requests = [
        req
        for m in item.iter_markers()
        if m.name in cfg.FAULT_MARKERS
        for req in cfg.marker_requests(m.name, m.args, m.kwargs, where(m.name))
    ]
    allow = cfg.allow_patterns([(m.args, m.kwargs) for m in item.iter_markers("allow_warn")], where("allow_warn"))
    return params, requests, allow


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # A plain hook (not a wrapper) so that failing here leaves other plugins' setup wrappers,
    # and their teardown, consistent; tryfirst: before the fixtures are set up.
    settings = item.config.stash[SETTINGS]
    sweep = item.stash.get(SWEEP, None)
    run = TestRun(item.nodeid, cfg.seed_for(settings.seed, _seed_nodeid(item)))
    item.stash[RUN] = run
    run.start()
    run.scope.listeners.append(lambda fired: item.ihook.pytest_gmem_fault_fired(item=item, fired=fired))
    if sweep is not None:
        run.scope.listeners.append(lambda fired: sweep.fired_fault(fired, run.hosts))
    error: str | None = None
    try:
        params, requests, allow = _read_markers(item)
        cfg.validate(requests)
    except cfg.ConfigError as exc:
        error = str(exc)
    if error is not None:
        pytest.fail(f"gmem: {error}", pytrace=False)
    if sweep is not None and sweep.scenario.revision:  # --gmem-compare: the scenario's revision
        params = dataclasses.replace(params, revision=sweep.scenario.revision, revision_source="--gmem-compare")
    item.stash[PARAMS] = params
    run.requests = [*item.config.stash[SESSION_FAULTS], *requests, *_sweep_requests(sweep)]
    run.allow = allow
    run.check = params.check


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    run = item.stash.get(RUN, None)
    if run is None:
        return (yield)
    error: str | None = None
    try:
        run.arm()
    except cfg.ConfigError as exc:
        error = str(exc)
    if error is not None:
        pytest.fail(f"gmem: {error}", pytrace=False)
    sweep = item.stash.get(SWEEP, None)
    if sweep is not None:
        sweep.begin_body(run.scope)
    try:
        result = yield
    except BaseException as exc:
        if sweep is not None:
            sweep.body_raised(exc)
        _after_body(item, run, body_failed=True)
        raise
    _after_body(item, run, body_failed=False)
    failure = sweep.failure_after_body() if sweep is not None and not sweep.census_mode else None
    if failure:
        pytest.fail(failure, pytrace=False)
    return result


def _after_body(item: pytest.Item, run: TestRun, body_failed: bool) -> None:
    sweep = item.stash.get(SWEEP, None)
    if sweep is not None:
        sweep.end_body(run.scope, run.hosts)
    problems = run.end_body()
    settings = item.config.stash[SETTINGS]
    record = build_record(run, settings.seed, _cli_revision(settings), _cli_faults(settings))
    if interesting(record):
        item.add_report_section("call", "gmem faults", section_text(record))
    if problems:
        text = _problems_text(run, problems, record["reproduce"])
        if body_failed:
            item.add_report_section("call", "gmem check", text)
        else:
            pytest.fail(text, pytrace=False)


def _problems_text(run: TestRun, problems: list[Problem], reproduce: str) -> str:
    return problems_text(run.nodeid, problems, describe_state(run.hosts, run.files), format_trace(run.scope), reproduce)


def _cli_revision(settings: cfg.Settings) -> str | None:
    return settings.revision if settings.revision_source != "default" else None


def _cli_faults(settings: cfg.Settings) -> list[str]:
    return [f.text for f in settings.faults]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    run = item.stash.get(RUN, None)
    try:
        result = yield
    finally:
        if run is not None:
            earlier = bool(run.problems)
            try:
                problems = run.close_hosts()
            finally:
                run.finish()
            if problems and not earlier:
                settings = item.config.stash[SETTINGS]
                reproduce = build_record(run, settings.seed, _cli_revision(settings), _cli_faults(settings))
                pytest.fail(_problems_text(run, problems, reproduce["reproduce"]), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    run = item.stash.get(RUN, None)
    if run is None:
        return report
    sweep = item.stash.get(SWEEP, None)
    if sweep is not None and not sweep.census_mode:
        _sweep_report(item, run, sweep, report)
    phases = item.stash.setdefault(PHASES, {})
    phases[report.when] = (report.outcome, hasattr(report, "wasxfail"))
    if report.when == "teardown":
        settings = item.config.stash[SETTINGS]
        record = build_record(run, settings.seed, _cli_revision(settings), _cli_faults(settings))
        record["outcome"] = combine_outcome(phases)
        if sweep is not None:
            record["sweep"] = sweep.record(_sweep_outcome(run, sweep), run.problems, run.hosts, _revision_of(item))
            record["sweep"]["nodeid"] = item.nodeid
            record["reproduce"] += sweep.flags
        report.gmem = record  # builtins only: serialized to the xdist controller with the report
        item.ihook.pytest_gmem_test_outcome(item=item, outcome=record["outcome"], record=record)
    return report


@pytest.hookimpl(trylast=True)
def pytest_gmem_make_host(revision: str, hugetlb: Mapping[str, int]) -> Any:
    from pytest_gmem import Host

    kwargs: dict[str, Any] = {"revision": revision}
    if hugetlb is not None:
        kwargs["hugetlb"] = dict(hugetlb)
    return Host(**kwargs)


class _Collector:
    """Gathers the tests' records (on the xdist controller: from the workers' reports)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.summary = Summary()
        self.is_worker = hasattr(config, "workerinput")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "gmem", None)
        if report.when == "teardown" and isinstance(record, dict):
            self.summary.add(record)

    def _json_settings(self) -> dict[str, Any]:
        s = self.config.stash[SETTINGS]
        return {"seed": s.seed, "revision": s.revision, "faults": [f.text for f in s.faults]}

    def pytest_sessionfinish(self) -> None:
        path = self.config.stash[SETTINGS].report
        if path and not self.is_worker:
            self.summary.write_json(path, self._json_settings())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        records = [r for r in self.summary.records.values() if interesting(r)]
        settings = self.config.stash[SETTINGS]
        if records:
            terminalreporter.write_sep("=", "gmem fault summary")
            for line in self.summary.table_lines():
                terminalreporter.write_line(line)
            unfired = self.summary.unfired_lines()
            if unfired:
                terminalreporter.write_line(f"armed but never fired ({len(unfired)}):")
                for line in unfired:
                    terminalreporter.write_line(f"  {line}")
            terminalreporter.write_line(f"gmem: --gmem-seed={settings.seed}")
        if settings.report:
            terminalreporter.write_line(f"gmem: JSON report written to {settings.report}")


class _XdistHooks:
    """The controller's seed travels to every worker (same seed everywhere: per-test seeds come
    from node ids, so they do not depend on which worker runs a test)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["gmem_seed"] = self.seed


class _CoverageHooks:
    """Fault contexts for coverage.py and the ``--gmem-error-paths`` report (the logic is in the
    pytest-free ``coverage_ctx`` and ``errorpaths`` modules; see docs/error-paths.md)."""

    def __init__(self, config: pytest.Config, report: str | None) -> None:
        from .coverage_ctx import FaultContexts

        self.config = config
        self.report = report  # None: no report; "": terminal only; else also this JSON file
        self.mode = config.getoption("gmem_cov_context")
        self.is_worker = hasattr(config, "workerinput")
        self.contexts = FaultContexts(test_contexts=lambda: config.pluginmanager.hasplugin("_cov_contexts"))
        self.measurement: Any = None
        self.own = False  # measured by the plugin itself (here, or by the xdist workers)
        self.lines: dict[str, dict[str, list[str]]] = {}

    def _switching(self) -> bool:
        if self.mode == "auto":
            return self.report is not None or bool(self.contexts.test_contexts())
        return bool(self.mode == "on")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from .coverage_ctx import current_coverage, dynamic_context_conflict

        cov = current_coverage()
        if cov is not None and dynamic_context_conflict(cov) and self._switching():
            msg = (f"gmem: coverage's [run] dynamic_context = {dynamic_context_conflict(cov)} would fight the "
                   "fault contexts: they are not recorded (drop it; use --cov-context=test)")
            self.config.issue_config_time_warning(pytest.PytestConfigWarning(msg), stacklevel=2)
        controller = self.config.pluginmanager.hasplugin("dsession")  # xdist: the workers measure
        self.own = self.report is not None and cov is None
        if self.own and not controller:
            from .errorpaths import Measurement

            self.measurement = Measurement()
            self.contexts.label_phases = True

    def _begin(self, item: pytest.Item, phase: str) -> None:
        if self._switching():
            self.contexts.begin(item.nodeid, phase)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        self._begin(item, "setup")
        try:
            return (yield)
        finally:
            self.contexts.end()

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        # trylast: innermost wrapper, after pytest-cov switched to '{nodeid}|run'; the plain label
        # comes back right after the body, before the plugin disarms and checks.
        self._begin(item, "call")
        try:
            return (yield)
        finally:
            self.contexts.end()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        self._begin(item, "teardown")
        try:
            return (yield)
        finally:
            self.contexts.finish()

    def pytest_gmem_fault_fired(self, fired: Any) -> None:
        if self.contexts.nodeid:
            self.contexts.fired(fired.label())

    def pytest_sessionfinish(self) -> None:
        if self.measurement is None:
            return
        from .errorpaths import extract, find_branches, merge

        extract_ = extract(self.measurement.stop(), find_branches())
        if self.is_worker:
            self.config.workeroutput["gmem_error_paths"] = extract_  # type: ignore[attr-defined]
        else:
            merge(self.lines, extract_)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        from .errorpaths import merge

        merge(self.lines, getattr(node, "workeroutput", {}).get("gmem_error_paths", {}))

    def _external_data(self) -> tuple[Any, str]:
        from .coverage_ctx import current_coverage

        controller = getattr(self.config.pluginmanager.get_plugin("_cov"), "cov_controller", None)
        cov = getattr(controller, "cov", None) or current_coverage()
        if cov is None:
            return None, "no coverage"
        return cov.get_data(), f"coverage data {getattr(cov.config, 'data_file', '')}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None or self.is_worker:
            return
        from .errorpaths import build_report, extract, find_branches, report_lines, write_json

        branches = find_branches()
        if self.own:
            lines, source = self.lines, "in-process measurement (--gmem-error-paths)"
        else:
            data, source = self._external_data()
            lines = extract(data, branches) if data is not None else {}
        report = build_report(branches, lines, source)
        terminalreporter.write_sep("=", "gmem error paths")
        for line in report_lines(report, verbose=self.config.getoption("verbose") > 0):
            terminalreporter.write_line(line)
        if self.report:
            write_json(report, self.report)
            terminalreporter.write_line(f"gmem: error-path JSON report written to {self.report}")


# --- fault sweeps (the logic is in the pytest-free ``sweep`` and ``compare`` modules) -------------
def _seed_nodeid(item: pytest.Item) -> str:
    """Sweep items and census runs take the seed of the test they sweep (same faker data)."""
    sweep = item.stash.get(SWEEP, None)
    return sweep.base_nodeid if sweep is not None else item.nodeid


def _sweep_requests(sweep: ItemState | None) -> list[cfg.ArmRequest]:
    from .sweep import kind_args

    if sweep is None:
        return []
    out = []
    for f in sweep.scenario.faults:
        name, args = kind_args(f.kind)
        out.append(cfg.ArmRequest(sweep.source, f.point, name, args, f.nth, 1, f.when()))
    return out


def _revision_of(item: pytest.Item) -> str:
    params = item.stash.get(PARAMS, None)
    return (params.revision if params else None) or item.config.stash[SETTINGS].revision


def _sweep_outcome(run: TestRun, sweep: ItemState) -> str:
    return sweep.outcome(run.problems, run.hosts)


def _sweep_report(item: pytest.Item, run: TestRun, sweep: ItemState, report: pytest.TestReport) -> None:
    """A tolerated outcome (``expect=``, or any under ``--gmem-compare``) is an xfail, not a failure."""
    if not report.failed or report.when == "setup":
        return
    outcome = _sweep_outcome(run, sweep)
    if outcome not in sweep.tolerated:
        return
    if report.when == "call":
        report.outcome = "skipped"
        report.wasxfail = f"gmem sweep: {outcome} ({sweep.detail or outcome})"[:200]
    elif outcome in ("warn", "invariant"):  # found only when the hosts were closed
        report.sections.append(("gmem sweep", f"{outcome} at teardown, tolerated: {report.longreprtext}"))
        report.outcome = "passed"
        report.longrepr = None


class _Sweeps:
    """``fault_sweep`` / ``--gmem-sweep`` / ``--gmem-compare``: at collection, a census run of each
    swept test finds the reachable faults and one item per scenario follows the test's own item
    (see docs/sweeps.md); at the end, the outcome table and its pictures."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.sweep_all = bool(config.getoption("gmem_sweep"))
        self.depth = int(config.getoption("gmem_sweep_depth") or 1)
        self.compare = self._revisions(config.getoption("gmem_compare"))
        self.records: list[dict[str, Any]] = []
        self.is_worker = hasattr(config, "workerinput")

    @staticmethod
    def _revisions(value: str | None) -> list[str] | None:
        if not value:
            return None
        known = list(_known_revisions())
        names = known if value.strip() == "all" else [v.strip() for v in value.split(",") if v.strip()]
        try:
            return [cfg.check_revision(n, "--gmem-compare", known) for n in names]
        except cfg.ConfigError as exc:
            raise pytest.UsageError(f"gmem: {exc}") from None

    # --- collection ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(self, collector: pytest.Collector, name: str, obj: object) -> Any:
        result = yield
        items = result if isinstance(result, list) else [result] if isinstance(result, pytest.Function) else None
        if not items:
            return result
        out: list[Any] = []
        for item in items:
            out.append(item)
            if isinstance(item, pytest.Function):
                out.extend(self._expand(collector, item))
        return out

    def _spec(self, collector: pytest.Collector, item: pytest.Function) -> SweepSpec | None:
        from .sweep import SweepError, SweepSpec, sweep_spec

        mark = item.get_closest_marker("fault_sweep")
        if mark is None:
            if not (self.sweep_all and MODEL_FIXTURES.intersection(item.fixturenames)):
                return None
            return SweepSpec(depth=self.depth)
        try:
            return sweep_spec(mark.args, mark.kwargs, f"marker fault_sweep on {item.name}", self.depth)
        except SweepError as exc:
            raise collector.CollectError(f"gmem: {exc}") from None

    def _expand(self, collector: pytest.Collector, item: pytest.Function) -> list[pytest.Function]:
        from .sweep import OUTCOMES, PASSING, ROLLBACK, Scenario, plan

        spec = self._spec(collector, item)
        if spec is None:
            return []
        pinned = any("revision" in m.kwargs for m in item.iter_markers("gmem"))
        revisions: list[str | None] = list(self.compare) if self.compare and not pinned else [None]
        tolerated = frozenset(OUTCOMES) if self.compare else spec.expect | PASSING
        out: list[pytest.Function] = []
        for rev in revisions:
            base = Scenario((), rev)
            census = self._census(item, base, spec)
            if not census.ok:
                warnings.warn(pytest.PytestWarning(
                    f"gmem: the census run of {item.nodeid}{f' under {rev}' if rev else ''} failed: "
                    "no sweep items (run the test alone to see why)"), stacklevel=1)
                continue
            first = plan(spec, census.hits, base)
            out.extend(self._item(item, s, tolerated) for s in first)
            if spec.depth == 2:
                for parent in first:
                    rb = self._census(item, parent, spec).phase_hits.get(ROLLBACK, {})
                    out.extend(self._item(item, s, tolerated) for s in plan(spec, rb, parent, ROLLBACK))
        return out

    def _flags(self, scenario: Scenario) -> str:
        flags = ""
        if scenario.revision:
            flags += f" --gmem-compare={scenario.revision}"
        if self.sweep_all:
            flags += " --gmem-sweep"
        if self.depth != 1:
            flags += f" --gmem-sweep-depth={self.depth}"
        return flags

    def _clone(self, item: pytest.Function, extra_id: str | None = None) -> pytest.Function:
        """A new item of the same test function; ``extra_id`` is appended to its parameter ids
        (through the callspec: pytest >= 9.2 builds node ids from the callspec, not the name)."""
        import _pytest.python as pyt

        callspec = getattr(item, "callspec", None)
        if extra_id is not None:
            spec_cls = getattr(pyt, "CallSpec", None) or pyt.CallSpec2
            base = callspec if callspec is not None else spec_cls()
            callspec = dataclasses.replace(base, _idlist=(*base._idlist, extra_id))
        name = f"{item.originalname}[{callspec.id}]" if callspec is not None else item.originalname
        keywords = {callspec.id: True} if callspec is not None else {}
        return pytest.Function.from_parent(
            item.parent, name=name, callspec=callspec, fixtureinfo=item._fixtureinfo,
            keywords=keywords, originalname=item.originalname,
        )

    def _item(self, item: pytest.Function, scenario: Scenario, tolerated: frozenset[str]) -> pytest.Function:
        from .sweep import ItemState

        new = self._clone(item, scenario.ident())
        new.stash[SWEEP] = ItemState(scenario, f"fault_sweep on {item.name}", item.nodeid,
                                     tolerated=tolerated, flags=self._flags(scenario))
        return new

    def _census(self, item: pytest.Function, scenario: Scenario, spec: SweepSpec) -> Census:
        """Run the test once (fixtures, markers, checks) with the scenario's faults armed and
        count the hits of its body; cached in the pytest cache."""
        from _pytest.runner import runtestprotocol

        from . import __version__
        from .sweep import Census, ItemState, census_key, source_digest

        settings = self.config.stash[SETTINGS]
        cache = getattr(self.config, "cache", None)
        try:
            module_src = item.path.read_bytes()
        except OSError:
            module_src = b""
        key = "gmem/census/" + census_key(
            __version__, item.nodeid, scenario.ident(), scenario.revision or settings.revision, settings.seed,
            [f.text for f in settings.faults], source_digest("pytest_gmem.model", "faults"),
            hashlib.sha1(module_src).hexdigest(),
        )
        if cache is not None:
            cached = cache.get(key, None)
            if isinstance(cached, dict):
                try:
                    return Census.from_json(cached)
                except (KeyError, TypeError, ValueError):
                    pass
        clone = self._clone(item)
        state = ItemState(scenario, f"fault_sweep on {item.name}", item.nodeid, census_mode=True)
        clone.stash[SWEEP] = state
        capman = self.config.pluginmanager.getplugin("capturemanager")
        capturing = getattr(getattr(capman, "_global_capturing", None), "_state", None)
        try:
            reports = runtestprotocol(clone, log=False, nextitem=None)
        finally:
            if capturing in ("started", "resumed") and capman is not None:
                capman.resume_global_capture()
        census = state.census or Census(ok=False)
        if not scenario.faults:
            census.ok = census.ok and all(r.passed for r in reports)
        if cache is not None and (census.ok or scenario.faults):
            cache.set(key, census.to_json())
        return census

    # --- results ------------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "gmem", None)
        if report.when == "teardown" and isinstance(record, dict) and isinstance(record.get("sweep"), dict):
            self.records.append(record)

    def _command(self) -> str:
        import shlex

        return " ".join(["pytest", *(shlex.quote(a) for a in self.config.invocation_params.args)])

    def pytest_sessionfinish(self) -> None:
        path = self.config.stash[SETTINGS].report
        if path and not self.is_worker and self.records:
            from .compare import sweep_records, write_pictures

            self.pictures = write_pictures(path, sweep_records(self.records), self._command())

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not self.records:
            return
        from .compare import examples, sweep_records, table_lines

        recs = sweep_records(self.records)
        title = "gmem design comparison (fault sweep)" if self.compare else "gmem fault sweep"
        terminalreporter.write_sep("=", title)
        for line in table_lines(recs):
            terminalreporter.write_line(line)
        for line in examples(recs):
            for i, part in enumerate(line.split("\n")):
                terminalreporter.write_line(f"  e.g. {part}" if i == 0 else part)
        for path in getattr(self, "pictures", ()):
            terminalreporter.write_line(f"gmem: comparison picture written to {path}")


class _FakerSeed:
    """Faker's ``faker`` fixture seeds itself from a ``faker_seed`` fixture when one is active."""

    @pytest.fixture(autouse=True)
    def faker_seed(self, request: pytest.FixtureRequest) -> int:
        return cfg.seed_for(request.config.stash[SETTINGS].seed, _seed_nodeid(request.node))


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    """``assert a == b`` on two ``gmem.snapshot()`` values shows what differs, range by range."""
    snapshot_type = getattr(import_module("pytest_gmem.model.snapshot"), "Snapshot", None)
    if op != "==" or snapshot_type is None:
        return None
    if isinstance(left, snapshot_type) and isinstance(right, snapshot_type):
        return ["gmem snapshots differ (- left, + right):", *left.diff(right)]
    return None


# --- fixtures ---------------------------------------------------------------------------------
def _run(request: pytest.FixtureRequest) -> TestRun:
    item: pytest.Item = request.node
    run = item.stash.get(RUN, None)
    if run is None:  # pragma: no cover - only if another plugin skips our setup hook
        raise pytest.UsageError("gmem: fixtures need the gmem plugin's setup hook")
    return run


def _params(request: pytest.FixtureRequest) -> cfg.GmemParams:
    item: pytest.Item = request.node
    return item.stash.get(PARAMS, cfg.GmemParams())


def _make_host(request: pytest.FixtureRequest, revision: str | None, hugetlb: Mapping[str, int] | None) -> Any:
    params = _params(request)
    rev = revision or params.revision or request.config.stash[SETTINGS].revision
    pools = hugetlb if hugetlb is not None else params.pools()
    host = request.node.ihook.pytest_gmem_make_host(
        item=request.node, config=request.config, revision=rev, hugetlb=pools
    )
    return _run(request).add_host(host)


@pytest.fixture
def gmem_host(request: pytest.FixtureRequest) -> Any:
    """The ``Host`` of the test: pools and revision from the ``gmem`` marker and
    ``--gmem-revision``. Checked after the test body, closed and checked again at teardown."""
    return _make_host(request, None, None)


@pytest.fixture
def gmem_vm(gmem_host: Any, request: pytest.FixtureRequest) -> Any:
    """A VM on ``gmem_host``, of the ``gmem`` marker's ``vm_type`` (default sw_protected)."""
    return gmem_host.create_vm(vm_type=_params(request).vm_type)


@pytest.fixture
def gmem_factory(request: pytest.FixtureRequest) -> GmemFactory:
    """Make more: ``gmem_factory(size=..., page_size=..., vm=...)`` files (default: on
    ``gmem_vm``), ``gmem_factory.vm(host)``, ``gmem_factory.host(revision=..., hugetlb=...)``."""
    return GmemFactory(
        _run(request),
        _params(request),
        lambda revision, hugetlb: _make_host(request, revision, hugetlb),
        lambda: request.getfixturevalue("gmem_vm"),
    )


@pytest.fixture
def gmem(gmem_factory: GmemFactory) -> Any:
    """A ``GuestMemfd`` on ``gmem_vm`` built from the ``gmem`` marker (default: 4M of 2M HugeTLB
    pages, mmap-able, initially shared)."""
    return gmem_factory()


@pytest.fixture(name="faults")
def faults_fixture(request: pytest.FixtureRequest) -> FaultsFixture:
    """Arm faults in the test body: ``faults.inject(point, kind, nth=...)``, ``faults.arm(spec)``;
    read ``faults.trace``, ``faults.fired``, ``faults.census``. They end with the test."""
    return FaultsFixture(_run(request), request.node.name)
