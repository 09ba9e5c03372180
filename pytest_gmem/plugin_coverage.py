"""pytest glue for fault-labelled coverage contexts and the model's error-path report (the
logic is in the pytest-free ``coverage_ctx`` and ``errorpaths`` modules)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


class CoverageHooks:
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

    def scenario(self, nodeid: str) -> Any:
        """A context manager around the body of one scenario of a batched sweep item: labelled
        as that scenario's own item would be (``{nodeid}|run|fault=...``)."""
        import contextlib

        @contextlib.contextmanager
        def labelled() -> Generator[None, None, None]:
            if not self._switching():
                yield
                return
            outer = (self.contexts.nodeid, self.contexts.phase)
            self.contexts.end()
            self.contexts.begin(nodeid, "call")
            if self.contexts.base():
                self.contexts._switch(self.contexts.base())
            try:
                yield
            finally:
                self.contexts.end()
                self.contexts.begin(*outer)
                if self.contexts.base():
                    self.contexts._switch(self.contexts.base())

        return labelled()

    def pytest_gmem_fault_fired(self, fired: Any) -> None:
        from .coverage_ctx import fault_label

        if self.contexts.nodeid:
            self.contexts.fired(fault_label(fired))

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
            try:
                write_json(report, self.report)
            except OSError as exc:  # checked at configure time; the path went away since, or /proc
                terminalreporter.write_line(f"gmem: cannot write the error-path JSON report to {self.report} "
                                            f"(--gmem-error-paths): {exc}", red=True, bold=True)
                return
            terminalreporter.write_line(f"gmem: error-path JSON report written to {self.report}")
