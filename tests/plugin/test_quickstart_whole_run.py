"""docs/quickstart.md "Faults for a whole run": each command does to the quickstart's two tests
what the page says it does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = (Path(__file__).resolve().parents[2] / "docs" / "quickstart.md").read_text()


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC, re.S)


@pytest.fixture
def quickstart(pytester: pytest.Pytester) -> pytest.Pytester:
    first = next(b for b in _blocks() if "def test_round_trip" in b)
    fault = next(b for b in _blocks() if "def test_enomem_changes_nothing" in b)
    pytester.makepyfile(test_convert=first, test_fault=fault)
    return pytester


def test_the_quickstart_tests_pass_on_their_own(quickstart: pytest.Pytester) -> None:
    quickstart.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_session_fault_fails_the_round_trip(quickstart: pytest.Pytester) -> None:
    assert "--gmem-fault 'kvm_gmem_shareability_store=1*off->1*enomem'" in DOC
    result = quickstart.runpytest("-p", "no:randomly", "--gmem-fault", "kvm_gmem_shareability_store=1*off->1*enomem")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E   *ConversionError: [[]Errno 12[]]*", "FAILED test_convert.py::test_round_trip*"])


def test_the_seeded_environment_fault_fails_the_round_trip(
    quickstart: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "GMEM_FAULTS='__kvm_gmem_filemap_add_folio=25%enomem@seed=7'" in DOC
    monkeypatch.setenv("GMEM_FAULTS", "__kvm_gmem_filemap_add_folio=25%enomem@seed=7")
    result = quickstart.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E   *GmemError: [[]Errno 12[]]*", "FAILED test_convert.py::test_round_trip*"])


def test_rfc_v2_swallows_the_enomem(quickstart: pytest.Pytester) -> None:
    assert "--gmem-revision=rfc-v2 -n 2 --gmem-report=gmem-report.json" in DOC
    result = quickstart.runpytest("-p", "no:randomly", "--gmem-revision=rfc-v2", "--gmem-report=gmem-report.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_fault.py::test_enomem_changes_nothing - Failed: DID NOT RAISE*"])
    assert (quickstart.path / "gmem-report.json").is_file()
