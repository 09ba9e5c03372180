"""--gmem-verify-determinism runs each test twice with the same seed and fails the ones whose
runs differ; a test's messages do not depend on what ran before it in the process."""

from __future__ import annotations

import pytest

SUITE = """
import os
import pytest

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault("kvm_gmem_shareability_store[phase=forward]=50%enomem@times=inf")
def test_seeded(gmem):
    for i in range(8):
        try:
            gmem.convert_shared(i << 12, "4K")
        except OSError:
            pass

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
def test_unseeded(gmem):
    for i in range(os.urandom(1)[0] % 2 + 1 if os.environ.get("FLIP") is None else int(os.environ["FLIP"])):
        gmem.convert_shared(i << 12, "4K")

@pytest.fixture(scope="session")
def runs():
    return []

def test_session_fixture_set_up_once_per_run(runs, gmem):
    runs.append(1)
    assert len(runs) == 1, "the first run tears down every fixture, the session's too"
"""


def test_a_seeded_test_passes_and_an_unseeded_one_fails_naming_the_first_difference(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(SUITE)
    # a counter that flips between the two runs makes the difference certain
    pytester.makeconftest("""
import os
def pytest_runtest_setup(item):
    if item.name == "test_unseeded":
        os.environ["FLIP"] = "2" if os.environ.get("FLIP") == "1" else "1"
""")
    result = pytester.runpytest("-p", "no:randomly", "--gmem-verify-determinism")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "gmem: test_*.py::test_unseeded is not deterministic (--gmem-verify-determinism): two runs with the same "
        "seed differ (trace digests * and *), first at event 4:",
        "  first run (3 events):",
        "*> (ends here)",
        "  second run (5 events):",
        "    > hit kvm_gmem_convert_compute_work#2+1 *",
    ])
    assert result.stdout.str().count("Captured gmem faults call") == 1, "only the second run is reported"


def test_without_the_option_each_test_runs_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("-p", "no:randomly", "-k", "session_fixture")
    result.assert_outcomes(passed=1, deselected=2)


def test_sweep_scenarios_are_checked_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
import pytest

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points=["kvm_gmem_shareability_store"])
def test_round_trip(gmem):
    try:
        gmem.convert_shared(0, "4K")
        gmem.convert_private(0, "4K")
    except OSError:
        pass
""")
    result = pytester.runpytest("-p", "no:randomly", "--gmem-verify-determinism")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 2 and "failed" not in outcomes, result.stdout.str()


def test_block_names_do_not_depend_on_earlier_tests_in_the_process() -> None:
    from pytest_gmem import Host

    def first_block() -> str:
        host = Host(hugetlb={"2M": 2})
        gmem = host.create_vm().create_guest_memfd(size="2M", page_size="2M", mmap=True)
        gmem.mmap().write(0, b"x")
        return repr(next(iter(host.live_blocks)))

    assert first_block() == first_block() == "Block#1(huge-split base=0x0 nr=512)"
