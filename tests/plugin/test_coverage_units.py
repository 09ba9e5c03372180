"""coverage_ctx and errorpaths without pytest runs: the context switcher, the static finder."""

from __future__ import annotations

import textwrap
from typing import Any

from pytest_gmem.coverage_ctx import FaultContexts, fault_context, is_census_context, split_fault_context
from pytest_gmem.errorpaths import build_report, find_branches, find_branches_in_source, merge, report_lines


class FakeCoverage:
    def __init__(self) -> None:
        self.switched: list[str] = []
        self.config = type("Config", (), {"dynamic_context": None})()

    def switch_context(self, label: str) -> None:
        self.switched.append(label)


def test_fault_contexts_follow_pytest_cov_labels() -> None:
    cov = FakeCoverage()
    ctx = FaultContexts(test_contexts=lambda: True, coverage=lambda: cov)
    ctx.begin("t.py::test_a", "call")
    assert cov.switched == []  # pytest-cov labels the phase itself
    ctx.fired("p:ENOMEM#1")
    ctx.fired("q:ENOMEM#2")
    ctx.end()
    ctx.begin("t.py::test_a", "teardown")
    ctx.finish()
    assert cov.switched == [
        "t.py::test_a|run|fault=p:ENOMEM#1",
        "t.py::test_a|run|fault=p:ENOMEM#1+q:ENOMEM#2",
        "t.py::test_a|run",
    ]


def test_fault_contexts_label_phases_and_clear() -> None:
    cov = FakeCoverage()
    ctx = FaultContexts(label_phases=True, coverage=lambda: cov)
    ctx.begin("t.py::test_a", "setup")
    ctx.end()
    ctx.begin("t.py::test_a", "call")
    ctx.fired("p:ENOMEM#1")
    ctx.end()
    ctx.finish()
    ctx.fired("outside:ENOMEM#1")  # no test: ignored
    assert cov.switched == [
        "t.py::test_a|setup", "t.py::test_a|run", "t.py::test_a|run|fault=p:ENOMEM#1", "t.py::test_a|run", "",
    ]


def test_fault_contexts_without_coverage_or_with_a_conflict() -> None:
    FaultContexts(coverage=lambda: None).fired("p:ENOMEM#1")  # no coverage: nothing happens
    cov = FakeCoverage()
    cov.config.dynamic_context = "test_function"
    ctx = FaultContexts(coverage=lambda: cov)
    ctx.begin("t.py::test_a", "call")
    ctx.fired("p:ENOMEM#1")
    assert cov.switched == []


def test_census_contexts_are_recognised() -> None:
    assert is_census_context("t.py::test_a[gmem-census]|run")
    assert is_census_context("t.py::C::test_a[4096-fixed-gmem-census]|setup")
    assert is_census_context("t.py::test_a[gmem-census]|run|fault=p:ENOMEM#1")
    assert not is_census_context("t.py::test_a|run")
    assert not is_census_context("t.py::test_a[sweep-p-ENOMEM-1]|run|fault=p:ENOMEM#1")
    assert not is_census_context("t.py::test_a[mygmem-census]|run")  # a user's own id


def test_split_fault_context() -> None:
    label = fault_context("static|t.py::test_a[x|y]|run", ["p:ENOMEM#1", "q:EAGAIN#3"])
    assert split_fault_context(label) == ("static|t.py::test_a[x|y]|run", ["p:ENOMEM#1", "q:EAGAIN#3"])
    assert split_fault_context("t.py::test_a|run") is None


SOURCE = textwrap.dedent(
    """
    def convert(g, work):
        failure = None
        for w in work:
            try:
                execute(g, w, "forward")
            except ConvFailure as e:
                failure = e
                break
        if failure is None:
            return
        for w in work:
            try:
                execute(g, w, "rollback")
            except ConvFailure as e:
                g.host.warn("convert", "rollback failed")
        raise failure

    def store(g):
        f = P_STORE.hit(index=0)
        if f is not None:
            g.host.note_fault(f)
            raise ConvFailure(ENOMEM, None, "no memory")
        if (x := P_OTHER.hit()) is not None:
            g.host.note_fault(x)
        if g.bad:
            raise KernelBug("store", "spins forever")
        if g.size < 0:
            raise ValueError("not an error path of the kernel")

    class Pool:
        def take(self, n):
            try:
                self.reserve(n)
            except Exception:
                self.unreserve(n)
                raise
    """
)


def _line(text: str, nth: int = 1) -> int:
    lines = [i for i, line in enumerate(SOURCE.splitlines(), 1) if line.strip() == text]
    return lines[nth - 1]


def test_static_finder_on_a_small_source() -> None:
    found = {(b.function, b.kind, b.line) for b in find_branches_in_source(SOURCE, "m.py")}
    assert found == {
        ("convert", "errno", _line("failure = e")),  # except ConvFailure
        ("convert", "rollback", _line("for w in work:", 2)),  # after `if failure is None: return`
        ("convert", "WARN", _line('g.host.warn("convert", "rollback failed")')),
        ("store", "errno", _line("g.host.note_fault(f)")),  # if f is not None: ... raise ConvFailure
        ("store", "KernelBug", _line('raise KernelBug("store", "spins forever")')),
        ("Pool.take", "rollback", _line("self.unreserve(n)")),  # except: unreserve; raise
    }


def test_static_finder_on_the_model() -> None:
    branches = find_branches()
    kinds = {b.kind for b in branches}
    assert kinds == {"errno", "rollback", "WARN", "KernelBug", "fault"}
    where = {(b.file.rsplit("/", 1)[-1], b.function, b.kind) for b in branches}
    assert ("conversion.py", "convert_range", "rollback") in where
    assert ("conversion.py", "convert_range", "WARN") in where
    assert ("restructure.py", "_readd_original", "WARN") in where
    assert ("restructure.py", "_rollback_indices", "KernelBug") in where
    assert len({(b.file, b.line) for b in branches}) == len(branches)


def test_report_without_model_data_says_so() -> None:
    branches = find_branches_in_source(SOURCE, "pytest_gmem/model/m.py")
    report = build_report(branches, {}, "coverage data .coverage")
    assert report["summary"]["reached"] == 0 and report["summary"]["never"] == len(branches)
    assert report_lines(report)[0] == "no coverage data for pytest_gmem/model in coverage data .coverage " \
        "(was the model measured?)"


def test_report_from_merged_extracts() -> None:
    branches = find_branches_in_source(SOURCE, "pytest_gmem/model/m.py")
    rollback = next(b for b in branches if b.kind == "rollback")
    einval = next(b for b in branches if b.kind == "KernelBug")
    lines: dict[str, Any] = {}
    merge(lines, {"pytest_gmem/model/m.py": {str(rollback.line): ["t.py::a|run|fault=p:ENOMEM#1"]}})
    merge(lines, {"pytest_gmem/model/m.py": {str(rollback.line): ["t.py::b|run|fault=p:ENOMEM#1"],
                                             str(einval.line): ["t.py::c|run"]}})
    report = build_report(branches, lines, "test")
    rows = {r["line"]: r for r in report["branches"]}
    assert rows[rollback.line]["status"] == "fault-only"
    assert rows[rollback.line]["faults"] == {"p:ENOMEM#1": ["t.py::a", "t.py::b"]}
    assert rows[einval.line]["status"] == "plain-only"
    assert report["summary"]["fault_only"] == 1 and report["summary"]["plain_only"] == 1
    text = "\n".join(report_lines(report))
    assert f"m.py:{rollback.line}" in text and "fault-only  p:ENOMEM#1" in text
