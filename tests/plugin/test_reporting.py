"""The "gmem faults" report section, the summary table, --gmem-report JSON, the hooks."""

from __future__ import annotations

import json

import pytest

SUITE = """
import pytest
from pytest_gmem import ConversionError

@pytest.mark.enomem("kvm_gmem_convert_compute_work")
def test_fires(gmem):
    with pytest.raises(ConversionError):
        gmem.convert_private(0, "2M")

@pytest.mark.enomem("kvm_gmem_convert_compute_work")
def test_fires_and_fails(gmem):
    gmem.convert_private(0, "2M")

def test_reaches_only(gmem):
    gmem.convert_private(0, "2M")

def test_no_model():
    pass
"""


def test_report_section_lists_armed_fired_and_reproduce(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-rA", "--gmem-seed=77", "--gmem-revision=fixed")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*Captured gmem faults call*",
            "test seed: *",
            "armed:",
            "  kvm_gmem_convert_compute_work=ENOMEM@nth=1  [[]marker enomem on test_fires[]]  hits=1 fired=1",
            "fired:",
            "  kvm_gmem_convert_compute_work:ENOMEM#1*",
            "points reached: *kvm_gmem_convert_compute_work x1*",
            "reproduce: pytest test_suite.py::test_fires --gmem-seed=77 --gmem-revision=fixed",
        ]
    )


def test_reproduce_line_carries_session_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(gmem):\n    gmem.convert_private(0, '2M')\n")
    spec = "kvm_gmem_convert_compute_work=1*off->enomem"
    result = pytester.runpytest("-rA", "--gmem-seed=5", "--gmem-fault", spec)
    result.stdout.fnmatch_lines([f"reproduce: pytest *::test_x --gmem-seed=5 --gmem-fault '{spec}'"])


def test_summary_table(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--gmem-seed=1")
    result.stdout.fnmatch_lines(
        [
            "*= gmem fault summary =*",
            "point * tests * hits * fired * passed * failed",
            "kvm_gmem_convert_compute_work * 3 * 3 * 2 * 1 * 1",
            "gmem: --gmem-seed=1",
        ]
    )


def test_no_summary_without_model_or_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest()
    result.stdout.no_fnmatch_line("*gmem fault summary*")


def test_json_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--gmem-report=out.json", "--gmem-seed=9")
    data = json.loads((pytester.path / "out.json").read_text())
    assert data["settings"]["seed"] == 9
    tests = data["tests"]
    assert tests["test_suite.py::test_fires"]["outcome"] == "passed"
    assert tests["test_suite.py::test_fires_and_fails"]["outcome"] == "failed"
    assert [f["label"] for f in tests["test_suite.py::test_fires"]["fired"]] == [
        "kvm_gmem_convert_compute_work:ENOMEM#1"
    ]
    assert tests["test_suite.py::test_reaches_only"]["fired"] == []
    point = data["points"]["kvm_gmem_convert_compute_work"]
    assert sorted(point["fired_in"]) == ["test_suite.py::test_fires", "test_suite.py::test_fires_and_fails"]
    assert len(point["reached_by"]) == 3
    assert point["outcomes"]["failed"] == 1


def test_report_path_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ngmem_report = from-ini.json\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["gmem: JSON report written to from-ini.json"])
    assert (pytester.path / "from-ini.json").exists()


def test_hooks_fault_fired_and_outcome(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        SEEN = []

        def pytest_gmem_fault_fired(item, fired):
            SEEN.append(("fired", item.name, fired.label()))

        def pytest_gmem_test_outcome(item, outcome, record):
            SEEN.append(("outcome", item.name, outcome, len(record["fired"])))

        def pytest_sessionfinish():
            print("SEEN", sorted(SEEN))
        """
    )
    pytester.makepyfile(test_suite=SUITE)
    out = pytester.runpytest("-s").stdout.str()
    assert "('fired', 'test_fires', 'kvm_gmem_convert_compute_work:ENOMEM#1')" in out
    assert "('outcome', 'test_fires_and_fails', 'failed', 1)" in out
    assert "('outcome', 'test_no_model', 'passed', 0)" in out


def test_make_host_hook_replaces_the_host(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_gmem import Host

        def pytest_gmem_make_host(revision, hugetlb):
            return Host(hugetlb={"2M": 3}, revision="prealloc")
        """
    )
    pytester.makepyfile(
        """
        def test_pool(gmem_host):
            assert gmem_host.hugetlb_stats("2M")["total"] == 3
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("--gmem-report=missing/r.json", "*'missing/r.json' (from --gmem-report): the directory * does not exist"),
        ("--gmem-report=adir", "*'adir' (from --gmem-report): it is a directory*"),
        ("GMEM_REPORT=missing/r.json", "*'missing/r.json' (from GMEM_REPORT): the directory * does not exist"),
        ("ini=adir", "*'adir' (from ini gmem_report): it is a directory*"),
    ],
)
def test_unwritable_report_path_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, where: str, expected: str
) -> None:
    (pytester.path / "adir").mkdir()
    pytester.makepyfile("def test_x():\n    print('TEST RAN')\n")
    args = []
    if where.startswith("--"):
        args.append(where)
    elif where.startswith("ini="):
        pytester.makeini(f"[pytest]\ngmem_report = {where[4:]}\n")
    else:
        monkeypatch.setenv(*where.split("=", 1))
    result = pytester.runpytest("-s", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: gmem: cannot write the JSON report to " + expected])
    assert "TEST RAN" not in result.stdout.str()


def test_report_write_error_at_the_end_is_a_clean_message(pytester: pytest.Pytester) -> None:
    (pytester.path / "out").mkdir()
    pytester.makepyfile("import shutil\n\ndef test_x(gmem):\n    shutil.rmtree('out')\n")
    result = pytester.runpytest("--gmem-report=out/r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gmem: cannot write the JSON report to out/r.json: *No such file or directory*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*1 passed*"])
