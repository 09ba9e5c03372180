"""pytest -n 2: same seed on every worker, summary and JSON on the controller."""

from __future__ import annotations

import json

import pytest

SUITE = """
import pytest
from pytest_gmem import ConversionError

@pytest.mark.parametrize("i", range(6))
@pytest.mark.enomem("kvm_gmem_convert_compute_work")
def test_fires(gmem, i):
    with pytest.raises(ConversionError):
        gmem.convert_private(0, "2M")

@pytest.mark.parametrize("i", range(4))
def test_reaches(gmem, i):
    gmem.convert_private(0, "2M")
"""


def test_xdist_summary_and_report_on_controller(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--gmem-seed=42", "--gmem-report=x.json")
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(
        [
            "gmem: --gmem-seed=42",
            "*= gmem fault summary =*",
            "kvm_gmem_convert_compute_work * 10 * 10 * 6 * 6",
        ]
    )
    data = json.loads((pytester.path / "x.json").read_text())
    assert len(data["tests"]) == 10
    single = pytester.runpytest("-p", "no:xdist", "--gmem-seed=42", "--gmem-report=y.json")
    single.assert_outcomes(passed=10)
    data1 = json.loads((pytester.path / "y.json").read_text())
    # per-test seeds do not depend on the worker that ran the test
    assert {k: v["seed"] for k, v in data["tests"].items()} == {k: v["seed"] for k, v in data1["tests"].items()}
    assert len(data["points"]["kvm_gmem_convert_compute_work"]["fired_in"]) == 6
