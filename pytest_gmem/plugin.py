"""pytest-gmem: fixtures, markers and options over the guest_memfd model and ``faults``.

Hooks, options, markers and fixtures only; the logic lives in pytest-free modules:
``config`` (settings and marker arguments), ``testrun`` (a test's faults scope and checks),
``report`` (sections, summary, JSON), ``sweep`` / ``compare`` (fault sweeps and the design
comparison), ``coverage_ctx`` / ``errorpaths`` (coverage of error paths), ``hooks`` (this
plugin's hookspecs). Hook classes registered at configure time sit in ``plugin_report``,
``plugin_sweep`` and ``plugin_coverage``.

Life of a test: at setup a fresh recording faults scope is made current and the markers are
checked; just before the body the marker and ``--gmem-fault`` faults are armed; after the body
everything is disarmed and every host the test built is checked (``host.check()`` and its WARN
log); at the end of teardown the hosts are closed and checked again, and the scope is left and
closed, whatever happened before. A test using no fixture and no marker of the plugin gets only
its scope and the root-scope leak check.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Generator, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any

import pytest

from . import config as cfg
from ._keys import (
    BYSTANDER,
    EXTRAS,
    LIGHT,
    MODEL_FIXTURES,
    NO_EXTRAS,
    PARAMS,
    PHASES,
    RUN,
    SESSION_FAULTS,
    SETTINGS,
    seed_nodeid,
)
from ._keys import known_revisions as _known_revisions
from .plugin_coverage import CoverageHooks
from .plugin_determinism import DeterminismCheck
from .plugin_report import Collector, FakerSeed, XdistHooks
from .plugin_sweep import Sweeps
from .plugin_trace import TraceHider
from .report import (
    build_record,
    combine_outcome,
    describe_state,
    format_catalog,
    format_trace,
    interesting,
    problems_text,
    section_text,
    strict_failure,
)
from .testrun import FaultsFixture, GmemFactory, Problem, TestRun, root_leak_text

if TYPE_CHECKING:
    from collections.abc import Callable


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
        help="Label coverage.py data '{nodeid}|run|fault={point}:{kind}#{nth}' ({kind} as in sweep item ids) "
        "from the moment a fault fires. "
        "auto (default): with pytest-cov's --cov-context=test or --gmem-error-paths; on: whenever coverage "
        "is measuring; off: never.",
    )
    group.addoption("--gmem-strict-faults", dest="gmem_strict_faults", action="store_true", default=False,
                    help=cfg.STRICT_HELP)
    group.addoption("--gmem-verify-determinism", dest="gmem_verify_determinism", action="store_true",
                    default=False, help=cfg.DETERMINISM_HELP)
    group.addoption("--gmem-full-trace", dest="gmem_full_trace", action="store_true", default=False,
                    help=cfg.FULL_TRACE_HELP)
    from .sweep import COMPARE_HELP, SWEEP_DEPTH_HELP

    group.addoption("--gmem-compare", dest="gmem_compare", metavar="REVS", default=None, help=COMPARE_HELP)
    group.addoption("--gmem-sweep-depth", dest="gmem_sweep_depth", type=int, choices=(1, 2), default=1,
                    help=SWEEP_DEPTH_HELP)
    from .plugin_batch import BATCH_HELP

    group.addoption("--gmem-sweep-batch", dest="gmem_sweep_batch", metavar="N|off", default="64", help=BATCH_HELP)
    parser.addini("gmem_revision", cfg.REVISION_HELP, default="")
    parser.addini("gmem_faults", cfg.FAULT_HELP, type="linelist", default=[])
    parser.addini("gmem_seed", cfg.SEED_HELP, default="")
    parser.addini("gmem_report", cfg.REPORT_HELP, default="")
    parser.addini("gmem_strict_faults", cfg.STRICT_HELP, default="")


@pytest.hookimpl(trylast=True)  # after pytest-randomly's, whose seed may become the session seed
def pytest_configure(config: pytest.Config) -> None:
    for help_line in cfg.MARKER_HELP.values():
        config.addinivalue_line("markers", help_line)
    names = ("gmem_revision", "gmem_faults", "gmem_seed", "gmem_report", "gmem_strict_faults")
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
            fallback_seed=_randomly_seed(config),
        )
        session_faults = [cfg.ArmRequest(source=f"{f.source}", spec=f.text) for f in settings.faults]
        cfg.validate(session_faults)
        if settings.report and not hasattr(config, "workerinput"):
            cfg.check_report_path(settings.report, settings.report_source)
    except cfg.ConfigError as exc:
        raise pytest.UsageError(f"gmem: {exc}") from None
    config.stash[SETTINGS] = settings
    config.stash[SESSION_FAULTS] = session_faults
    config.pluginmanager.register(Collector(config), "gmem-collector")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(settings.seed), "gmem-xdist")
    if config.pluginmanager.hasplugin("faker"):
        config.pluginmanager.register(FakerSeed(), "gmem-faker")
    config.pluginmanager.register(Sweeps(config), "gmem-sweeps")
    if config.getoption("gmem_verify_determinism"):
        config.pluginmanager.register(DeterminismCheck(), "gmem-determinism")
    config.pluginmanager.register(TraceHider(not config.getoption("gmem_full_trace")), "gmem-trace")
    paths = config.getoption("gmem_error_paths")
    if paths and not paths.endswith(".json"):
        raise pytest.UsageError(f"gmem: --gmem-error-paths={paths}: the report path must end in .json "
                                "(write --gmem-error-paths alone, or with '=', before test paths)")
    if paths and not hasattr(config, "workerinput"):
        try:
            cfg.check_report_path(paths, f"--gmem-error-paths={paths}")
        except cfg.ConfigError as exc:
            raise pytest.UsageError(f"gmem: {exc}") from None
    cov_context = config.getoption("gmem_cov_context")
    if paths is not None or cov_context == "on" or (
        cov_context == "auto" and getattr(config.option, "cov_context", None) == "test"
    ):
        config.pluginmanager.register(CoverageHooks(config, paths), "gmem-coverage")


def _randomly_seed(config: pytest.Config) -> tuple[int, str] | None:
    """pytest-randomly's seed (an int once its pytest_configure ran), when it is active: one
    seed then reproduces the test order and the faults."""
    if not config.pluginmanager.hasplugin("randomly"):
        return None
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed, "pytest-randomly's --randomly-seed"
    return None


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
    if settings.seed_source.startswith("pytest-randomly"):
        lines[0] += f" (from {settings.seed_source})"
    if settings.revision_source != "default" or settings.faults:
        extra = [f"revision={settings.revision} (from {settings.revision_source})"]
        extra += [f"fault {f.text!r} (from {f.source})" for f in settings.faults]
        lines.append("gmem: " + ", ".join(extra))
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `-m gmem` selects every test that uses the model, marked or not.
    light = not config.stash[SESSION_FAULTS] and not config.getoption("gmem_verify_determinism")
    for item in items:
        names = getattr(item, "fixturenames", ())
        if MODEL_FIXTURES.intersection(names) and not item.get_closest_marker("gmem"):
            item.add_marker(pytest.mark.gmem)
        if light and is_bystander(item, names):
            item.stash[BYSTANDER] = True


#: What makes a test more than a bystander: the plugin's fixtures and markers.
_OWN_FIXTURES = MODEL_FIXTURES | {"faults"}
_OWN_MARKERS = frozenset({"gmem", "allow_warn", *cfg.FAULT_MARKERS})


def is_bystander(item: pytest.Item, names: Any) -> bool:
    """A test that uses no fixture and no marker of the plugin (and is no item a mode made): it
    gets the light path (a plain faults scope and the root-scope leak check, nothing else)."""
    if EXTRAS in item.stash or _OWN_FIXTURES.intersection(names):
        return False
    return not any(m.name in _OWN_MARKERS for m in item.iter_markers())


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
    extras = item.stash.get(EXTRAS, NO_EXTRAS)  # what a mode's plugin object asks for its items
    run = TestRun(item.nodeid, cfg.seed_for(settings.seed, seed_nodeid(item)))
    run.start()
    if extras.public:  # a fault a bystander arms itself reaches it too (coverage contexts)
        run.scope.listeners.append(lambda fired: item.ihook.pytest_gmem_fault_fired(item=item, fired=fired))
    if item.stash.get(BYSTANDER, False):
        item.stash[LIGHT] = run  # no markers to read, nothing to arm: see the teardown
        return
    item.stash[RUN] = run
    error: str | None = None
    try:
        params, requests, allow = _read_markers(item)
        cfg.validate(requests)
    except cfg.ConfigError as exc:
        error = str(exc)
    if error is not None:
        pytest.fail(f"gmem: {error}", pytrace=False)
    if extras.revision:
        params = dataclasses.replace(params, revision=extras.revision, revision_source=extras.revision_source)
    item.stash[PARAMS] = params
    run.requests = [*item.config.stash[SESSION_FAULTS], *requests, *extras.requests]
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
    try:
        result = yield
    except BaseException:
        _after_body(item, run, body_failed=True)
        raise
    _after_body(item, run, body_failed=False)
    return result


def _after_body(item: pytest.Item, run: TestRun, body_failed: bool) -> None:
    problems = run.end_body()
    leaked = run.root_leaks()
    record = _record(item, run) if run.touched() or problems or leaked else None
    if record is not None and interesting(record):
        item.add_report_section("call", "gmem faults", section_text(record))
    texts = [root_leak_text(run.nodeid, leaked)] if leaked else []
    if problems and record is not None:
        texts.append(_problems_text(run, problems, record["reproduce"]))
    plain = EXTRAS not in item.stash  # a sweep's items say themselves when a fault never fired
    strict = strict_failure(run) if plain and item.config.stash[SETTINGS].strict_faults else None
    if strict and not body_failed:  # a failed body shows the diagnosis in its gmem faults section
        texts.append(strict)
    if texts:
        if body_failed:
            item.add_report_section("call", "gmem check", "\n\n".join(texts))
        else:
            pytest.fail("\n\n".join(texts), pytrace=False)


def _record(item: pytest.Item, run: TestRun) -> dict[str, Any]:
    """The test's record; the reproduce line of a sweep item carries the flags that make it exist."""
    settings = item.config.stash[SETTINGS]
    record = build_record(run, settings.seed, _cli_revision(settings), _cli_faults(settings))
    record["reproduce"] += item.stash.get(EXTRAS, NO_EXTRAS).reproduce
    return record


def _problems_text(run: TestRun, problems: list[Problem], reproduce: str) -> str:
    return problems_text(run.nodeid, problems, describe_state(run.hosts, run.files), format_trace(run.scope), reproduce)


def _cli_revision(settings: cfg.Settings) -> str | None:
    return settings.revision if settings.revision_source != "default" else None


def _cli_faults(settings: cfg.Settings) -> list[str]:
    return [f.text for f in settings.faults]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    run = item.stash.get(RUN, None)
    light = item.stash.get(LIGHT, None) if run is None else None
    try:
        result = yield
    finally:  # whatever a fixture's teardown did, the plugin's own checks come here
        if light is not None:
            light.finish()
            leaked = light.root_leaks()
            if light.touched():  # it reached the model's points (a Host of its own): a full record
                item.stash[RUN] = light
            if leaked:
                pytest.fail(root_leak_text(item.nodeid, leaked), pytrace=False)
        if run is not None:
            earlier = bool(run.problems)
            try:
                problems = run.close_hosts()
            finally:
                run.finish()
            leaked = run.root_leaks()  # armed in the root scope by a fixture's thread, or after the body
            texts = [root_leak_text(run.nodeid, leaked)] if leaked else []
            if problems and not earlier:
                texts.append(_problems_text(run, problems, _record(item, run)["reproduce"]))
            if texts:
                pytest.fail("\n\n".join(texts), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    run = item.stash.get(RUN, None)
    if run is None and LIGHT not in item.stash:
        return report
    phases = item.stash.setdefault(PHASES, {})
    phases[report.when] = (report.outcome, hasattr(report, "wasxfail"))
    if run is None:  # a bystander's: its run, if it touched anything, came at teardown; the
        # public outcome hook is still called once per test when something implements it
        if report.when != "teardown":
            return report
        light = item.stash[LIGHT]
        del item.stash[LIGHT], item.stash[PHASES]  # items live as long as the session: keep nothing
        if not item.ihook.pytest_gmem_test_outcome.get_hookimpls():
            return report
        run = item.stash[RUN] = light
    extras = item.stash.get(EXTRAS, NO_EXTRAS)
    if report.when == "teardown":
        record = _record(item, run)
        record["outcome"] = combine_outcome(phases)
        if extras.record is not None:
            record.update(extras.record(run))
        report.gmem = record  # builtins only: serialized to the xdist controller with the report
        if extras.public:
            item.ihook.pytest_gmem_test_outcome(item=item, outcome=record["outcome"], record=record)
        # Items live as long as the session: a run keeps the test's hosts (its whole model) and
        # its fault trace, which nothing reads after the record (the determinism check takes
        # what it compares in its own, inner, makereport).
        del item.stash[RUN]
        if PHASES in item.stash:
            del item.stash[PHASES]
    return report


@pytest.hookimpl(trylast=True)
def pytest_gmem_make_host(revision: str, hugetlb: Mapping[str, int]) -> Any:
    from pytest_gmem import Host
    from pytest_gmem.revisions import get_revision

    kwargs: dict[str, Any] = {"revision": revision}
    if get_revision(revision).hugetlb == "wip":
        kwargs["wip_hugetlb"] = True  # a page_size of 2M/1G is the opt-in (docs/model.md)
    if hugetlb is not None:
        kwargs["hugetlb"] = dict(hugetlb)
    return Host(**kwargs)


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


def _built_by_plugin(request: pytest.FixtureRequest, what: str, build: Callable[[], Any]) -> Any:
    """What the model refuses while the plugin builds a test's host, VM or file (from the gmem
    marker's values) fails the test with the marker's name, not a model traceback."""
    try:
        return build()
    except (OSError, ValueError, TypeError) as exc:
        refused = f"{type(exc).__name__}: {exc}"
    # Failed outside the except block, so the report does not chain the model's exception.
    where = f"marker gmem on {request.node.name}" if request.node.get_closest_marker("gmem") else "gmem defaults"
    pytest.fail(
        f"gmem: {where} ({cfg.describe_params(_params(request))}): the model refused to build the "
        f"test's {what}: {refused}",
        pytrace=False,
    )


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
    return _built_by_plugin(request, "host", lambda: _make_host(request, None, None))


@pytest.fixture
def gmem_vm(gmem_host: Any, request: pytest.FixtureRequest) -> Any:
    """A VM on ``gmem_host``, of the ``gmem`` marker's ``vm_type`` (default sw_protected)."""
    return _built_by_plugin(request, "VM", lambda: gmem_host.create_vm(**_params(request).vm_options()))


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
def gmem(gmem_factory: GmemFactory, request: pytest.FixtureRequest) -> Any:
    """A ``GuestMemfd`` on ``gmem_vm`` built from the ``gmem`` marker (default: 4M of 2M HugeTLB
    pages, mmap-able, initially shared)."""
    return _built_by_plugin(request, "guest_memfd", gmem_factory)


@pytest.fixture(name="faults")
def faults_fixture(request: pytest.FixtureRequest) -> FaultsFixture:
    """Arm faults in the test body: ``faults.inject(point, kind, nth=...)``, ``faults.arm(spec)``;
    read ``faults.trace``, ``faults.fired``, ``faults.census``. They end with the test; from a
    thread the test started, they arm in the test's scope too."""
    return FaultsFixture(_run(request), request.node.name)
