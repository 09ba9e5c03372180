"""pytest glue for the session's records: the summary table, the JSON report, the seed sent to
xdist workers, and Faker's seed."""

from __future__ import annotations

from typing import Any

import pytest

from . import config as cfg
from ._keys import SETTINGS, seed_nodeid
from .report import Summary, interesting


class Collector:
    """Gathers the tests' records (on the xdist controller: from the workers' reports)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.summary = Summary()
        self.is_worker = hasattr(config, "workerinput")
        self.write_error: str | None = None

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
            try:
                self.summary.write_json(path, self._json_settings())
            except OSError as exc:  # checked at configure time; the path went away since
                self.write_error = f"gmem: cannot write the JSON report to {path}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        records = [r for r in self.summary.records.values() if interesting(r)]
        settings = self.config.stash[SETTINGS]
        if records:
            terminalreporter.write_sep("=", "gmem fault summary")
            for line in self.summary.table_lines():
                terminalreporter.write_line(line)
            # listed with -v only: in a passing run they read like warnings, and each failing
            # test's own report section already says which of its faults never fired, and why
            unfired = self.summary.unfired_lines() if self.config.option.verbose > 0 else []
            if unfired:
                terminalreporter.write_line(f"armed but never fired ({len(unfired)}):")
                for line in unfired:
                    terminalreporter.write_line(f"  {line}")
            terminalreporter.write_line(f"gmem: --gmem-seed={settings.seed}")
        if self.write_error:
            terminalreporter.write_line(self.write_error, red=True, bold=True)
        elif settings.report:
            terminalreporter.write_line(f"gmem: JSON report written to {settings.report}")


class XdistHooks:
    """The controller's seed travels to every worker (same seed everywhere: per-test seeds come
    from node ids, so they do not depend on which worker runs a test)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["gmem_seed"] = self.seed


class FakerSeed:
    """Faker's ``faker`` fixture seeds itself from a ``faker_seed`` fixture when one is among the
    test's fixtures. Not autouse (a fixture on every test would cost every test that never uses
    Faker): collection adds it to the tests whose fixtures include ``faker``."""

    @pytest.fixture
    def faker_seed(self, request: pytest.FixtureRequest) -> int:
        return cfg.seed_for(request.config.stash[SETTINGS].seed, seed_nodeid(request.node))

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            names = getattr(item, "fixturenames", None)
            if isinstance(names, list) and "faker" in names and "faker_seed" not in names:
                names.append("faker_seed")
