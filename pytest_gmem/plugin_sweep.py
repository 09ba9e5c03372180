"""pytest glue for fault sweeps: collection-time census, one item per scenario, outcomes and
the design comparison. The logic is in the pytest-free ``sweep`` and ``compare`` modules."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from . import config as cfg
from ._keys import EXTRAS, MODEL_FIXTURES, RUN, SETTINGS, SWEEP, SWEEP_ERROR, ItemExtras, is_skip, revision_of
from ._keys import known_revisions as _known_revisions
from .plugin_batch import (
    JunitBatches,
    SweepBatch,
    batch_ident,
    batches,
    not_resumable,
    parse_batch,
    scale_timeout,
    scenarios_in,
)
from .testrun import TestRun

if TYPE_CHECKING:
    from .sweep import Census, CensusCache, ItemState, Scenario, SweepSpec


def sweep_outcome(run: TestRun, sweep: ItemState) -> str:
    return sweep.outcome(run.problems, run.hosts)


def sweep_report(item: pytest.Item, run: TestRun, sweep: ItemState, report: pytest.TestReport) -> None:
    """A tolerated outcome (``expect=``, or any under ``--gmem-compare``) is an xfail, not a failure."""
    if not report.failed or report.when == "setup":
        return
    outcome = sweep_outcome(run, sweep)
    if outcome not in sweep.tolerated:
        return
    if report.when == "call":
        report.outcome = "skipped"
        report.wasxfail = f"gmem sweep: {outcome} ({sweep.detail or outcome})"[:200]
    elif outcome in ("warn", "invariant") and sweep.phase_failed is None:  # found when the hosts were closed
        report.sections.append(("gmem sweep", f"{outcome} at teardown, tolerated: {report.longreprtext}"))
        report.outcome = "passed"
        report.longrepr = None


class Sweeps:
    """``fault_sweep`` / ``--gmem-sweep`` / ``--gmem-compare``: at collection, a census run of each
    swept test finds the reachable faults and one item per scenario (or per batch of scenarios)
    follows the test's own item (see docs/sweeps.md); while a sweep item runs, what its fault did
    (the hooks below act on sweep items only; what the core hooks do for them is in their
    ``ItemExtras``); at the end, the outcome table and its pictures."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.sweep_all = bool(config.getoption("gmem_sweep"))
        self.depth = int(config.getoption("gmem_sweep_depth") or 1)
        self.compare = self._revisions(config.getoption("gmem_compare"))
        self.records: list[dict[str, Any]] = []
        self.is_worker = hasattr(config, "workerinput")
        self._cache: CensusCache | None = None
        self._sources: dict[Path, str] = {}
        self.write_error: str | None = None
        self.census_runs = 0  # censuses computed in this process (census runs)
        self.census_read = 0  # censuses read from the cache (or shipped by the xdist controller)
        workerinput = getattr(config, "workerinput", None)
        self._shipped: dict[str, Any] = dict(workerinput.get("gmem_census", {})) if workerinput else {}
        self._worker_counts: list[tuple[int, int]] = []  # the workers' (runs, read), on the controller
        self.batch = parse_batch(config.getoption("gmem_sweep_batch", "off"))
        if any("[" in a and "sweep-" in a.partition("[")[2] for a in config.args):
            self.batch = None  # a scenario named on the command line: its own item, as the id says
        if any(config.getoption(o, False) for o in ("lf", "failedfirst", "stepwise")):
            self.batch = None  # the last failures are scenarios' node ids: collect those items

    @staticmethod
    def _revisions(value: str | None) -> list[str] | None:
        if value is None:
            return None
        known = list(_known_revisions())
        names = [v.strip() for v in value.split(",") if v.strip()]
        if "all" in names:
            if set(names) != {"all"}:
                raise pytest.UsageError(
                    f"gmem: --gmem-compare={value!r}: 'all' cannot be combined with revision names; "
                    f"give 'all' alone, or the revisions to compare (e.g. {','.join(known[:2])!r})"
                )
            names = known
        if not names:
            raise pytest.UsageError(
                f"gmem: --gmem-compare={value!r}: name at least one revision ({', '.join(known)}) or 'all'"
            )
        try:
            # "fixed,fixed" is one revision: one item per scenario, not two with the same node id
            return list(dict.fromkeys(cfg.check_revision(n, "--gmem-compare", known) for n in names))
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

    def _spec(self, item: pytest.Function) -> SweepSpec | None:
        from .sweep import SweepError, SweepSpec, sweep_spec

        mark = item.get_closest_marker("fault_sweep")
        if mark is None:
            if not (self.sweep_all and MODEL_FIXTURES.intersection(item.fixturenames)):
                return None
            return SweepSpec(depth=self.depth)
        try:
            return sweep_spec(mark.args, mark.kwargs, f"marker fault_sweep on {item.name}", self.depth)
        except SweepError as exc:  # only this test is an error item; the module still collects
            item.stash[SWEEP_ERROR] = f"gmem: {exc}"
            return None

    def _expand(self, collector: pytest.Collector, item: pytest.Function) -> list[pytest.Function]:
        from .sweep import OUTCOMES, PASSING, ROLLBACK, Scenario, plan

        spec = self._spec(item)
        if SWEEP_ERROR in item.stash or spec is not None:
            self._item_hooks()  # before any census run: they go through these hooks too
        if spec is None:
            return []
        pinned = any("revision" in m.kwargs for m in item.iter_markers("gmem"))
        revisions: list[str | None] = list(self.compare) if self.compare and not pinned else [None]
        tolerated = frozenset(OUTCOMES) if self.compare else spec.expect | PASSING
        out: list[pytest.Function] = []
        batch = self.batch if self.batch and not_resumable(item) is None else None
        for rev in revisions:
            base = Scenario((), rev)
            census = self._census(item, base, spec)
            if not census.ok and census.skipped:  # skip / xfail marker: nothing to sweep, as expected
                continue
            if not census.ok:
                warnings.warn(pytest.PytestWarning(
                    f"gmem: the census run of {item.nodeid}{f' under {rev}' if rev else ''} failed: "
                    "no sweep items (run the test alone to see why)"), stacklevel=1)
                continue
            first = plan(spec, census.hits, base)
            out.extend(self._items(item, first, tolerated, batch))
            if spec.depth == 2:
                for parent in first:
                    rb = self._census(item, parent, spec).phase_hits.get(ROLLBACK, {})
                    out.extend(self._items(item, plan(spec, rb, parent, ROLLBACK), tolerated, batch))
        return out

    def _items(self, item: pytest.Function, scenarios: list[Scenario], tolerated: frozenset[str],
               batch: int | None) -> list[pytest.Function]:
        """One item per scenario, or (batched) one per run of ``batch`` scenarios."""
        if batch is None:
            return [self._item(item, s, tolerated) for s in scenarios]
        out: list[pytest.Function] = []
        for group in batches(scenarios, batch):
            if len(group) == 1:
                out.append(self._item(item, group[0], tolerated))
                continue
            new = self._clone(item, batch_ident(group), SweepBatch)
            assert isinstance(new, SweepBatch)
            new.gmem_scenarios = group
            new.gmem_tolerated = tolerated
            new.gmem_reports = []
            new.gmem_base = item
            new.gmem_flags = self._flags
            # the batch's own setup runs as its scenarios' items would (their revision, their
            # seed, the rollback check on); its body runs no test but the scenarios, which call
            # the public hooks and make the records (the batch makes neither)
            new.stash[EXTRAS] = ItemExtras(seed_nodeid=item.nodeid, revision=group[0].revision,
                                           revision_source="--gmem-compare", public=False)
            scale_timeout(new, item, len(group))
            out.append(new)
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

    def _clone(self, item: pytest.Function, extra_id: str | None = None,
               cls: type[pytest.Function] = pytest.Function) -> pytest.Function:
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
        return cls.from_parent(
            item.parent, name=name, callspec=callspec, fixtureinfo=item._fixtureinfo,
            keywords=keywords, originalname=item.originalname,
        )

    def _item(self, item: pytest.Function, scenario: Scenario, tolerated: frozenset[str]) -> pytest.Function:
        from .sweep import ItemState

        new = self._clone(item, scenario.ident())
        state = ItemState(scenario, f"fault_sweep on {item.name}", item.nodeid,
                          tolerated=tolerated, flags=self._flags(scenario))
        new.stash[SWEEP] = state
        new.stash[EXTRAS] = self._extras(state, record=lambda run: self._record_fields(new, run))
        return new

    @staticmethod
    def _extras(state: ItemState, public: bool = True, record: Any = None) -> ItemExtras:
        """What the core hooks do for a sweep item or census run: the swept test's seed, the
        scenario's faults and revision, the options that make the item exist."""
        return ItemExtras(seed_nodeid=state.base_nodeid, requests=tuple(state.arm_requests()),
                          revision=state.scenario.revision, revision_source="--gmem-compare",
                          reproduce=state.flags, public=public, record=record)

    @staticmethod
    def _record_fields(item: pytest.Item, run: TestRun) -> dict[str, Any]:
        """The ``sweep`` part of a sweep item's record (its outcome, for the table and the JSON)."""
        sweep = item.stash[SWEEP]
        record = sweep.record(sweep_outcome(run, sweep), run.problems, run.hosts, revision_of(item))
        return {"sweep": {**record, "nodeid": item.nodeid}}

    @property
    def cache(self) -> CensusCache | None:
        """The census cache, ``.pytest_cache/d/gmem-census`` (none with ``-p no:cacheprovider``)."""
        if self._cache is None:
            from .sweep import CensusCache

            pytest_cache = getattr(self.config, "cache", None)
            if pytest_cache is None:
                return None
            self._cache = CensusCache(pytest_cache.mkdir("gmem-census"), shipped=self._shipped)
        return self._cache

    # --- xdist: the controller ships the cached censuses, the workers report their counts -------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Every cached census goes to every worker in its ``workerinput``: no worker reads or
        computes a census the cache holds (read once, here)."""
        if self._shipped_out is None:
            cache = self.cache
            self._shipped_out = cache.entries() if cache is not None else {}
        node.workerinput["gmem_census"] = self._shipped_out

    _shipped_out: dict[str, Any] | None = None
    _frozen = False  # the collection's objects are out of the garbage collector's reach

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        counts = getattr(node, "workeroutput", {}).get("gmem_census")
        if isinstance(counts, (list, tuple)) and len(counts) == 2:
            self._worker_counts.append((int(counts[0]), int(counts[1])))

    def census_counts(self) -> tuple[int, int]:
        """(computed, read from the cache) in this session, the workers' included."""
        return (self.census_runs + sum(c[0] for c in self._worker_counts),
                self.census_read + sum(c[1] for c in self._worker_counts))

    def _test_sources_digest(self, item: pytest.Function) -> str:
        """Digest of the test module, the conftest files above it, and every module under the
        rootdir they import, transitively (a helper module's constants decide what the body
        does as much as the test's own source)."""
        from .sweep import conftest_paths, files_digest, import_closure

        if item.path not in self._sources:
            import faults
            import pytest_gmem

            start = [item.path, *conftest_paths(item.path.parent, self.config.rootpath)]
            # the plugin and the engine are in the key whole (source_digest): not walked again
            packages = [Path(m.__file__).parent for m in (pytest_gmem, faults) if m.__file__]
            self._sources[item.path] = files_digest(import_closure(start, self.config.rootpath, packages))
        return self._sources[item.path]

    def _census(self, item: pytest.Function, scenario: Scenario, spec: SweepSpec) -> Census:
        """Run the test once (fixtures, markers, checks) with the scenario's faults armed and
        count the hits of its body; cached in the pytest cache."""
        from . import __version__
        from .sweep import census_key, source_digest

        settings = self.config.stash[SETTINGS]
        cache = self.cache
        # What decides which faults the body reaches: the code (plugin, engine, test module and
        # what it imports), the test, the scenario, the revision and the --gmem-fault faults. The
        # session seed only when the census run drew on it (CensusCache.lookup / store).
        key = census_key(
            __version__, item.nodeid, scenario.ident(), scenario.revision or settings.revision,
            [f.text for f in settings.faults], source_digest("pytest_gmem", "faults"), self._test_sources_digest(item),
        )
        if cache is None:
            return self._run_census(item, scenario)
        cached = cache.lookup(key, settings.seed)
        if cached is not None:
            self.census_read += 1
            return cached
        with cache.lock(key):  # another xdist worker may be computing it: wait, then read it
            cached = cache.lookup(key, settings.seed)
            if cached is not None:
                self.census_read += 1
                return cached
            census = self._run_census(item, scenario)
            if census.ok or scenario.faults:
                cache.store(key, settings.seed, census)
        return census

    def _run_census(self, item: pytest.Function, scenario: Scenario) -> Census:
        from _pytest.runner import runtestprotocol

        from .coverage_ctx import CENSUS_ID
        from .sweep import Census, ItemState

        self.census_runs += 1
        # Its own node id (the test's, with the parameter id 'gmem-census' appended), so that
        # what labels a run by node id (pytest-cov's --cov-context=test, the fault contexts,
        # warnings) never takes the census run for a run of the test itself: coverage contexts
        # 'test_x.py::test_x[gmem-census]|run' (docs/error-paths.md).
        clone = self._clone(item, CENSUS_ID)
        state = ItemState(scenario, f"fault_sweep on {item.name}", item.nodeid, census_mode=True)
        clone.stash[SWEEP] = state
        clone.stash[EXTRAS] = self._extras(state, public=False)  # census runs call no public hook
        capman = self.config.pluginmanager.getplugin("capturemanager")
        capturing = getattr(getattr(capman, "_global_capturing", None), "_state", None)
        try:
            # Tear down only below the session: session-scoped fixtures stay set up for the real
            # tests (built once), as between two items of different modules.
            reports = runtestprotocol(clone, log=False, nextitem=cast(pytest.Item, _SessionOnly(item.session)))
        finally:
            if capturing in ("started", "resumed") and capman is not None:
                capman.resume_global_capture()
        census = state.census or Census(ok=False)
        census.seeded = census.seeded or "faker" in item.fixturenames  # Faker is seeded from the gmem seed
        if not scenario.faults:
            census.ok = census.ok and all(r.passed for r in reports)
            census.skipped = not census.ok and any(r.skipped for r in reports)
        return census

    @pytest.hookimpl(wrapper=True)
    def pytest_gmem_make_host(self, item: pytest.Item) -> Any:
        host = yield
        sweep = item.stash.get(SWEEP, None)
        swept = isinstance(item, SweepBatch) or (sweep is not None and not sweep.census_mode)
        if swept and hasattr(host, "check_rollback"):
            host.check_rollback = True  # a swept error must leave the file as it was (invariant 7)
        return host

    # --- the per-item hooks: only where sweep items run or their reports arrive ---------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.config.pluginmanager.get_plugin("dsession") is not None:  # an xdist controller
            self._item_hooks()
            cast(SweepItemHooks, self.config.pluginmanager.get_plugin("gmem-sweep-items")).session = session

    def _item_hooks(self) -> None:
        if not self.config.pluginmanager.has_plugin("gmem-sweep-items"):
            self.config.pluginmanager.register(SweepItemHooks(self), "gmem-sweep-items")
            from _pytest.junitxml import xml_key

            xml = self.config.stash.get(xml_key, None)
            if xml is not None:  # --junitxml, in the process that writes it
                self.config.pluginmanager.register(JunitBatches(xml), "gmem-junit-batches")

    # --- batches --------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """The terminal's progress counts scenarios: a batch of N is N tests."""
        batched = sum(len(i.gmem_scenarios) - 1 for i in session.items if isinstance(i, SweepBatch))
        session.testscollected += batched
        if batched:
            # What the collection left alive lives as long as the session: out of the collector's
            # reach, the many short-lived model objects of a batch's scenarios cost less to collect
            # (about a tenth of the reference sweep's time, measured). Undone at session finish.
            import gc

            gc.collect()
            gc.freeze()
            self._frozen = True

    def _command(self) -> str:
        import shlex

        return " ".join(["pytest", *(shlex.quote(a) for a in self.config.invocation_params.args)])

    def pytest_sessionfinish(self) -> None:
        # An xdist worker's process ends with its session: left frozen, what it holds is spared
        # the interpreter's last full collection at exit, which the controller waits for
        # (about 70 ms of each -n 2 run of the big sweep, measured). Elsewhere the process may
        # go on (pytester, pytest.main in a script): the collector gets its objects back.
        if self._frozen and not self.is_worker:
            import gc

            gc.unfreeze()
            self._frozen = False
        if self._cache is not None:
            self._cache.prune()
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput["gmem_census"] = [self.census_runs, self.census_read]
        path = self.config.stash[SETTINGS].report
        if path and not self.is_worker and self.records:
            from .compare import sweep_records, write_pictures

            try:
                self.pictures = write_pictures(path, sweep_records(self.records), self._command())
            except OSError as exc:
                self.write_error = f"gmem: cannot write the comparison pictures next to {path}: {exc}"

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.write_error:
            terminalreporter.write_line(self.write_error, red=True, bold=True)
        if self.is_worker:
            return
        runs, read = self.census_counts()
        if runs or read:
            terminalreporter.write_line(f"gmem: sweep censuses: {runs} computed, {read} from the cache")
        if not self.records:
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


class SweepItemHooks:
    """The sweep's per-item hooks, registered (by :class:`Sweeps`) only in a process that runs
    sweep items or receives their reports: the tests of a run without sweeps never pass
    through them."""

    def __init__(self, sweeps: Sweeps) -> None:
        self.sweeps = sweeps
        self.config = sweeps.config
        self.session: pytest.Session | None = None  # on an xdist controller
        self.xdist_tests = 0  # there: the scenarios the workers' items hold

    # --- the xdist controller's count of tests ------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """The terminal's progress counts scenarios, as at ``-n 0``: a batch of N is N tests."""
        self.xdist_tests = sum(scenarios_in(nodeid) for nodeid in ids)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        # after xdist set the count to the items' (it does so for every collection it receives)
        if self.xdist_tests and self.session is not None:
            self.session.testscollected = self.xdist_tests

    # --- results ------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if getattr(report, "gmem_batch", False) and hasattr(report, "gmem"):
            del report.gmem  # a batch is no test of its own: its scenarios are (before the Collector)
        shipped = getattr(report, "gmem_reports", None)
        if shipped and not self.sweeps.is_worker:  # a batch's scenarios, run on an xdist worker
            if isinstance(shipped, bytes):
                shipped = load_reports(shipped)
            for data in shipped:
                rep = self.config.hook.pytest_report_from_serializable(config=self.config, data=data)
                self.config.hook.pytest_runtest_logreport(report=rep)
        record = getattr(report, "gmem", None)
        if not (isinstance(record, dict) and isinstance(record.get("sweep"), dict)):
            return
        if report.when == "teardown":
            self.sweeps.records.append(record)
        elif getattr(report, "gmem_scenario", False):  # a scenario of a batch: its one report
            self.sweeps.records.append(record)
            collector = self.config.pluginmanager.get_plugin("gmem-collector")
            if collector is not None:
                collector.summary.add(record)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        """A batch's own passing call is not a test: its scenarios' reports are counted instead."""
        if report.when == "call" and report.passed and getattr(report, "gmem_batch", False):
            return "", "", ""
        return None

    # --- a sweep item while it runs -------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        error = item.stash.get(SWEEP_ERROR, None)
        if error is not None:  # a bad fault_sweep marker: this test only is an error
            pytest.fail(error, pytrace=False)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        # trylast: inside the core's wrapper (armed before, checked after), next to the body, so
        # that what the body raised is told from what the checks raise
        sweep, run = item.stash.get(SWEEP, None), item.stash.get(RUN, None)
        if sweep is None or run is None:
            return (yield)
        run.scope.listeners.append(lambda fired: sweep.fired_fault(fired, run.hosts))
        sweep.begin_body(run.scope)
        try:
            result = yield
        except BaseException as exc:
            sweep.body_raised(exc, skipped=is_skip(exc))
            sweep.end_body(run.scope, run.hosts)
            raise
        sweep.end_body(run.scope, run.hosts)
        failure = None if sweep.census_mode else sweep.failure_after_body()
        if failure:
            pytest.fail(failure, pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Any:
        sweep = item.stash.get(SWEEP, None)
        try:
            return (yield)
        except BaseException as exc:  # a fixture's teardown failed (the plugin's checks come after)
            if sweep is not None and not is_skip(exc):
                sweep.outside_body_raised("teardown", exc)
            raise

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        # trylast: before the core records the phase's outcome and builds the test's record
        report = yield
        sweep, run = item.stash.get(SWEEP, None), item.stash.get(RUN, None)
        if sweep is not None and run is not None:
            if report.when == "setup" and report.failed:
                sweep.outside_body_raised("setup", call.excinfo.value if call.excinfo else
                                          Exception(report.longreprtext))
            if not sweep.census_mode:
                sweep_report(item, run, sweep, report)
        if isinstance(item, SweepBatch):
            report.gmem_batch = len(item.gmem_scenarios)
            if report.when == "teardown" and item.gmem_reports:
                # On an xdist worker the scenarios' reports ride on the batch's last report (xdist
                # sends only reports of the running item); the controller logs them one by one.
                # One pickle of their serializable forms (builtins only; protocol 5, which every
                # Python this runs on reads): execnet's own serializer, pure Python, walks every
                # element of every report (a third of a worker's time on the reference sweep).
                import pickle

                report.gmem_reports = pickle.dumps(item.gmem_reports, protocol=5)
                item.gmem_reports = []
        return report


def load_reports(blob: bytes) -> list[Any]:
    """A batch's scenario reports as a worker pickled them: builtins only (what execnet itself
    would carry), so the unpickler resolves no global at all and a worker, even on another
    machine (``--tx ssh=...``), cannot make the controller run code. (``pickle`` is imported
    here, not at the plugin's load: most sessions never need it.)"""
    import io
    import pickle

    class BuiltinsOnly(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise pickle.UnpicklingError(f"gmem: a batch's reports from an xdist worker hold {module}.{name}; "
                                         "only builtins travel (as through execnet)")

    return cast("list[Any]", BuiltinsOnly(io.BytesIO(blob)).load())


class _SessionOnly:
    """The "next item" of a census run: its chain is only the session, so the run's teardown
    (``SetupState.teardown_exact``) pops the item, class, module and package nodes and keeps the
    session node, with its session-scoped fixtures, for the real tests."""

    def __init__(self, session: pytest.Session) -> None:
        self.session = session
        self.nodeid = ""

    def listchain(self) -> list[pytest.Session]:
        return [self.session]
