"""Fault-labelled coverage contexts and the --gmem-error-paths report (pytester runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from coverage import CoverageData

from pytest_gmem.errorpaths import find_branches

SUITE = """
import errno

import pytest

from pytest_gmem import ConversionError


@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.enomem("guestmem_hugetlb_stash_metadata")
def test_split_rolls_back(gmem):
    gmem.guest_write(0, b"private data")  # a 2M folio: converting 4K of it splits it
    with pytest.raises(ConversionError):
        gmem.convert_shared(0, "4K")
    assert gmem.ranges() == [(0, 4 << 20, "private")]


@pytest.mark.gmem(size="4M", page_size="2M", init_private=True, check=False)
def test_readd_fails_and_warns(gmem, faults):
    gmem.guest_write(0, b"private data")
    faults.inject("__kvm_gmem_filemap_add_folio", "ENOMEM", times=None)
    with pytest.raises(ConversionError):
        gmem.convert_shared(0, "4K")


@pytest.mark.gmem(size="4M", page_size="2M")
def test_plain(gmem):
    gmem.convert_private(0, "2M")
    with pytest.raises(ConversionError) as info:
        gmem.convert_shared(1, "4K")
    assert info.value.errno == errno.EINVAL
"""

#: plugins these runs do not need, and whose import costs most of a subprocess run's time
QUIET = ("-p", "no:benchmark", "-p", "no:hypothesispytest", "-p", "no:faker")

SPLIT = "test_suite.py::test_split_rolls_back"
READD = "test_suite.py::test_readd_fails_and_warns"
STASH = "guestmem_hugetlb_stash_metadata:ENOMEM#1"
ADD2 = "__kvm_gmem_filemap_add_folio:ENOMEM#1+__kvm_gmem_filemap_add_folio:ENOMEM#2"


def _branch(function: str, kind: str) -> tuple[str, int]:
    found = [b for b in find_branches() if b.function == function and b.kind == kind]
    assert found, (function, kind)
    return found[0].file, found[0].line


def _contexts_at(data: CoverageData, file: str, line: int) -> set[str]:
    for measured in data.measured_files():
        if Path(measured).as_posix().endswith(file):
            return set(data.contexts_by_lineno(measured).get(line, []))
    raise AssertionError(f"{file} not measured: {sorted(data.measured_files())}")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*QUIET, *args)


def _data(pytester: pytest.Pytester) -> CoverageData:
    data = CoverageData(basename=str(pytester.path / ".coverage"))
    data.read()
    return data


def _check_contexts(data: CoverageData) -> None:
    contexts = set(data.measured_contexts())
    # pytest-cov's own labels are there, and the fault ones extend them
    assert {f"{SPLIT}|setup", f"{SPLIT}|run", f"{SPLIT}|teardown"} <= contexts
    assert f"{SPLIT}|run|fault={STASH}" in contexts
    assert f"{READD}|run|fault={ADD2}" in contexts
    assert not [c for c in contexts if "test_plain" in c and "fault=" in c]
    # the rollback of kvm_gmem_convert_range and the WARN of kvm_gmem_split_folio_in_filemap
    # ran only under a fault
    file, line = _branch("convert_range", "rollback")
    assert _contexts_at(data, file, line) == {f"{SPLIT}|run|fault={STASH}", f"{READD}|run|fault={ADD2}"}
    file, line = _branch("_readd_original", "WARN")
    assert _contexts_at(data, file, line) == {f"{READD}|run|fault={ADD2}"}


def test_contexts_in_coverage_file_with_pytest_cov(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = _run(pytester, "--cov=pytest_gmem", "--cov-context=test", "--cov-report=")
    result.assert_outcomes(passed=3)
    _check_contexts(_data(pytester))


def test_contexts_in_coverage_file_with_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = _run(pytester, "-n", "2", "--cov=pytest_gmem", "--cov-context=test", "--cov-report=")
    result.assert_outcomes(passed=3)
    _check_contexts(_data(pytester))


def test_no_fault_contexts_without_cov_context(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = _run(pytester, "--cov=pytest_gmem", "--cov-report=")
    result.assert_outcomes(passed=3)
    assert set(_data(pytester).measured_contexts()) == {""}
    # asked for: fault contexts only, the rest of the data keeps no dynamic context
    result = _run(pytester, "--cov=pytest_gmem", "--cov-report=", "--gmem-cov-context=on")
    result.assert_outcomes(passed=3)
    assert set(_data(pytester).measured_contexts()) == {
        "",
        f"{SPLIT}|run|fault={STASH}",
        f"{READD}|run|fault=__kvm_gmem_filemap_add_folio:ENOMEM#1",  # until the second fired
        f"{READD}|run|fault={ADD2}",
    }


def _check_report(report: dict[str, object]) -> None:
    summary = report["summary"]
    assert isinstance(summary, dict)
    rows = report["branches"]
    assert isinstance(rows, list)
    assert summary["branches"] == len(rows) == len(find_branches())
    assert summary["fault_only"] >= 2 and summary["never"] > 0
    by_where = {(r["function"], r["kind"]): r for r in rows}
    rollback = by_where["convert_range", "rollback"]
    assert rollback["status"] == "fault-only"
    assert rollback["faults"] == {STASH: [SPLIT], ADD2: [READD]}
    assert rollback["contexts_without_fault"] == []
    warn = by_where["_readd_original", "WARN"]
    assert warn["status"] == "fault-only" and warn["faults"] == {ADD2: [READD]}
    assert warn["file"] == "pytest_gmem/model/restructure.py"
    einval = [r for r in rows if r["function"] == "ioctl_convert_range" and "PAGE_SIZE" in r["what"]]
    assert einval and einval[0]["status"] == "plain-only"
    assert einval[0]["contexts_without_fault"] == ["test_suite.py::test_plain|run"]
    assert by_where["_rollback_indices", "KernelBug"]["status"] == "never"


def test_error_path_report_in_process(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    (pytester.path / "out").mkdir()
    result = _run(pytester, "--gmem-error-paths=out/ep.json")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= gmem error paths =*",
            "branch * function * kind * reached * by fault (tests)",
            f"conversion.py:* convert_range * rollback * fault-only * {ADD2}, {STASH}",
            f"restructure.py:* _readd_original * WARN * fault-only * {ADD2}",
            "never reached (*):",
            "*restructure.py:* _rollback_indices * KernelBug *",
            "gmem: * error-handling branches in pytest_gmem/model, * reached: * only under an injected fault, *",
            "gmem: error-path JSON report written to out/ep.json",
        ]
    )
    report = json.loads((pytester.path / "out" / "ep.json").read_text())
    assert report["source"].startswith("in-process")
    _check_report(report)


def test_error_path_report_with_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = _run(pytester, "-n", "2", "--gmem-error-paths=ep.json")
    result.assert_outcomes(passed=3)
    _check_report(json.loads((pytester.path / "ep.json").read_text()))


def test_error_path_report_from_pytest_cov_and_data_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = _run(pytester, "--cov=pytest_gmem", "--cov-context=test", "--cov-report=", "--gmem-error-paths=ep.json")
    result.assert_outcomes(passed=3)
    report = json.loads((pytester.path / "ep.json").read_text())
    assert report["source"].startswith("coverage data")
    _check_report(report)
    # the same from the .coverage file pytest-cov wrote
    cli = subprocess.run(
        [sys.executable, "-m", "pytest_gmem.errorpaths", ".coverage", "--json", "cli.json"],
        cwd=pytester.path, capture_output=True, text=True, check=True,
    )
    assert "_readd_original" in cli.stdout and "fault-only" in cli.stdout
    again = json.loads((pytester.path / "cli.json").read_text())
    assert again["branches"] == report["branches"]


def test_report_says_when_the_model_was_not_measured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = _run(pytester, "--cov=faults", "--cov-report=", "--gmem-error-paths")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["no coverage data for pytest_gmem/model in coverage data *", "*0 reached*"])


def test_bad_report_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--gmem-error-paths=tests")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*gmem: --gmem-error-paths=tests: the report path must end in .json*"])


SPECREF = """
import pytest
from pytest_gmem import ConversionError

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points="filemap_remove_folio_for_restructuring", max_nth=1,
                         kinds=("speculative_refcount(hold=3)", "speculative_refcount(hold=none)"))
def test_sr(gmem):
    gmem.guest_write(0, b"x")
    try:
        gmem.convert_shared(0, "4K")
    except ConversionError:
        pass
"""


def test_fault_context_names_the_kind_the_node_id_names(pytester: pytest.Pytester) -> None:
    # two kinds of one fault class: two labels in the contexts and in the report's "by fault"
    pytester.makepyfile(test_sr=SPECREF)
    result = _run(pytester, "-p", "no:cacheprovider", "--gmem-revision=fixed", "--cov=pytest_gmem",
                  "--cov-context=test", "--cov-report=", "--gmem-error-paths=ep.json")
    result.assert_outcomes(passed=3)
    point = "filemap_remove_folio_for_restructuring"
    contexts = {c for c in _data(pytester).measured_contexts() if "fault=" in c}
    assert contexts == {f"test_sr.py::test_sr[sweep-{point}-{kind}-1]|run|fault={point}:{kind}#1"
                        for kind in ("specref.hold3", "specref.forever")}
    report = json.loads((pytester.path / "ep.json").read_text())
    labels = {label for b in report["branches"] for label in b["faults"]}
    assert labels == {f"{point}:specref.hold3#1", f"{point}:specref.forever#1"}


DEPTH2 = """
import pytest
from pytest_gmem import ConversionError

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points="kvm_gmem_shareability_store", max_nth=1, depth=2, expect="any")
def test_conv(gmem):
    gmem.guest_write(0, b"x")
    try:
        gmem.convert_shared(0, "4M")
    except ConversionError:
        pass
"""


@pytest.mark.parametrize("cov", [False, True], ids=["in-process", "pytest-cov"])
def test_census_runs_are_not_plain_runs_in_coverage(pytester: pytest.Pytester, cov: bool) -> None:
    # depth 2: the census of the rollback phase runs the test with the first fault armed; its
    # lines must not count as reached without a fault
    pytester.makepyfile(test_d2=DEPTH2)
    flags = ["--cov=pytest_gmem", "--cov-context=test", "--cov-report="] if cov else []
    result = _run(pytester, "-p", "no:cacheprovider", "--gmem-revision=fixed", *flags, "--gmem-error-paths=ep.json")
    assert result.ret == 0
    rows = json.loads((pytester.path / "ep.json").read_text())["branches"]
    (rollback,) = [r for r in rows if r["function"] == "convert_range" and r["kind"] == "rollback"]
    assert rollback["status"] == "fault-only", rollback
    assert rollback["contexts_without_fault"] == []
    tests = {t for ts in rollback["faults"].values() for t in ts}
    assert "test_d2.py::test_conv[sweep-kvm_gmem_shareability_store-ENOMEM-1]" in tests
    assert all("[sweep-" in t for t in tests), tests
    if cov:
        contexts = set(_data(pytester).measured_contexts())
        assert "test_d2.py::test_conv[gmem-census]|run" in contexts
        assert "test_d2.py::test_conv|run" in contexts  # the test's own item


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("d.json", "ERROR: gmem: cannot write the JSON report to 'd.json' (from --gmem-error-paths=d.json): "
                   "it is a directory*"),
        ("missing/ep.json", "ERROR: gmem: cannot write the JSON report to 'missing/ep.json' "
                            "(from --gmem-error-paths=missing/ep.json): the directory '*missing' does not exist"),
    ],
)
def test_unwritable_error_paths_report_stops_the_run_at_start(
    pytester: pytest.Pytester, path: str, expected: str
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    (pytester.path / "d.json").mkdir()
    result = pytester.runpytest("-p", "no:cacheprovider", f"--gmem-error-paths={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert not (pytester.path / "missing").exists()  # not created behind the user's back


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_error_paths_report_that_cannot_be_written_at_the_end_is_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-error-paths=/proc/gmem-ep.json")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["gmem: cannot write the error-path JSON report to /proc/gmem-ep.json "
                                 "(--gmem-error-paths): [[]Errno *"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
