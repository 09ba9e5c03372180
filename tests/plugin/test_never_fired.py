"""A fault that never fired says why (the point's preconditions, nth, the filter, the points
reached nearest to it); --gmem-strict-faults makes it a failure; a passing run stays quiet."""

from __future__ import annotations

import pytest

SUITE = """
import pytest

@pytest.mark.gmem(size="1G", page_size="1G", init_private=True, hugetlb={"1G": 1})
@pytest.mark.enomem("guestmem_hugetlb_stash_metadata")
def test_nothing_allocated(gmem):
    with pytest.raises(OSError):
        gmem.convert_shared(0, "4K")      # nothing was allocated: nothing to split

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.enomem("kvm_gmem_shareability_store", nth=200)
def test_nth_too_large(gmem):
    gmem.convert_shared(0, "4K")

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault("kvm_gmem_shareability_store[phase=rollback]=enomem")
def test_filter_never_matches(gmem):
    gmem.convert_shared(0, "4K")
"""


def test_the_failure_says_which_precondition_did_not_hold(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("-p", "no:randomly", "-k", "nothing_allocated")
    result.assert_outcomes(failed=1, deselected=2)
    out = result.stdout.str()
    assert "DID NOT RAISE" in out
    result.stdout.fnmatch_lines([
        "never fired:",
        "  guestmem_hugetlb_stash_metadata*",
        "    guestmem_hugetlb_stash_metadata was never reached: it is reached when an allocated 2M/1G folio",
        "      is split: *",
        "*A range where nothing was allocated",
        "      yet (no write, no fallocate) has no folio to split.",
        "    the test reached: *kvm_gmem_convert_compute_work x1*",
    ])
    assert "a wrong point, nth or filter?" not in out


def test_a_passing_run_lists_unfired_faults_only_with_verbose(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    quiet = pytester.runpytest("-p", "no:randomly", "-k", "nth_too_large or filter_never")
    quiet.assert_outcomes(passed=2, deselected=1)
    assert "never fired" not in quiet.stdout.str()
    verbose = pytester.runpytest("-p", "no:randomly", "-v", "-k", "nth_too_large or filter_never")
    verbose.stdout.fnmatch_lines(["armed but never fired (2):", "*test_nth_too_large*nth=200*"])


def test_strict_mode_fails_tests_whose_faults_never_fired_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("-p", "no:randomly", "--gmem-strict-faults", "-k", "nth_too_large or filter_never")
    result.assert_outcomes(failed=2, deselected=1)
    result.stdout.fnmatch_lines([
        "gmem: 1 fault(s) armed by *test_nth_too_large never fired (--gmem-strict-faults):",
        "  kvm_gmem_shareability_store=ENOMEM@nth=200  [marker enomem on test_nth_too_large]",
        "    kvm_gmem_shareability_store was reached once, but the rule ENOMEM nth=200 never fired",
        "    it fires at hit 200 of the point at the earliest: the test reached it once*",
    ])
    result.stdout.fnmatch_lines([
        "    kvm_gmem_shareability_store was reached once, but never with a context that passes the*",
        "*phase='rollback'",
        "    contexts seen there: phase = 'forward'",
    ])


@pytest.mark.parametrize(("how", "value"), [("env", "1"), ("ini", "true")])
def test_strict_mode_from_the_environment_and_the_ini_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str, value: str
) -> None:
    pytester.makepyfile(SUITE)
    if how == "env":
        monkeypatch.setenv("GMEM_STRICT_FAULTS", value)
    else:
        pytester.makeini(f"[pytest]\ngmem_strict_faults = {value}\n")
    result = pytester.runpytest("-p", "no:randomly", "-k", "nth_too_large")
    result.assert_outcomes(failed=1, deselected=2)


def test_a_bad_strict_value_names_its_source(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(SUITE)
    monkeypatch.setenv("GMEM_STRICT_FAULTS", "sometimes")
    result = pytester.runpytest("-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid value 'sometimes' from GMEM_STRICT_FAULTS" in result.stderr.str()


def test_session_faults_are_exempt_from_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(gmem):\n    pass\n")
    result = pytester.runpytest("-p", "no:randomly", "--gmem-strict-faults",
                                "--gmem-fault", "tdh_mem_page_remove=tdx_error(TDX_OPERAND_BUSY)")
    result.assert_outcomes(passed=1)
