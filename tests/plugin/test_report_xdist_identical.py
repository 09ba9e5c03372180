"""For one seed, the JSON report does not depend on the process layout: -n 0 and -n 2 write
the same report (timings aside), failures and sweeps included."""

from __future__ import annotations

import json
from typing import Any

import pytest

SUITE = """
import pytest

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault("kvm_gmem_shareability_store[phase=forward]=50%enomem@times=inf")
@pytest.mark.parametrize("n", range(6))
def test_coin(gmem, n):
    for i in range(n + 2):
        try:
            gmem.convert_shared(i << 12, "4K")
        except OSError:
            pass

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points=["kvm_gmem_shareability_store", "guestmem_hugetlb_stash_metadata"])
def test_swept(gmem):
    gmem.guest_write(0, b"x")
    gmem.convert_shared(0, "4K")
    gmem.convert_private(0, "4K")

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True, revision="rfc-v2")
@pytest.mark.enomem("kvm_gmem_convert_compute_work")
def test_fails_under_rfc_v2(gmem):
    with pytest.raises(OSError):
        gmem.convert_shared(0, "4K")
"""

#: Keys whose values are wall-clock measurements.
TIMING_KEYS = frozenset({"duration", "durations", "elapsed", "seconds", "start", "stop", "time"})


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _report(pytester: pytest.Pytester, *args: str) -> dict[str, Any]:
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--gmem-seed=12345",
                                           "--gmem-report=report.json", *args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    data: dict[str, Any] = json.loads((pytester.path / "report.json").read_text())
    return data


def test_the_report_is_the_same_under_n0_and_n2(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    serial = _report(pytester)
    parallel = _report(pytester, "-n", "2")
    assert len(serial["tests"]) >= 10
    assert any(t["fired"] for t in serial["tests"].values())
    assert any(t["problems"] or t["outcome"] == "failed" for t in serial["tests"].values())
    assert _strip(serial) == _strip(parallel)


def test_the_examples_report_is_the_same_under_n0_and_n2(tmp_path: Any) -> None:
    """The bundled example suite (sweeps under every revision, batched items, Hypothesis
    schedules): one seed, two process layouts, one report."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    reports = []
    for layout in (["-p", "no:xdist"], ["-n", "2"]):
        path = tmp_path / f"report{len(reports)}.json"
        done = subprocess.run([sys.executable, "-m", "pytest", "examples", "-p", "gmem", "-p", "no:randomly", "-q",
                               "--gmem-seed=1", "--gmem-compare=all", f"--gmem-report={path}", *layout],
                              cwd=root, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-2000:]
        reports.append(json.loads(path.read_text()))
    assert len(reports[0]["sweep"]["scenarios"]) > 300
    assert _strip(reports[0]) == _strip(reports[1])
