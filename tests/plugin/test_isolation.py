"""Nothing armed in one test reaches another, whatever happened in the first."""

from __future__ import annotations

import pytest


def test_fault_in_failing_test_never_reaches_next(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import faults as faults_engine
        import pytest

        LEAKED = []

        @pytest.mark.enomem("kvm_gmem_convert_compute_work", times=None)
        def test_1_fails_with_faults_armed(gmem, faults):
            LEAKED.append(faults.inject("kvm_gmem_shareability_store", "ENOMEM", times=None))
            LEAKED.append(faults_engine.inject("kvm_gmem_convert_compute_work", "ENOMEM", times=None))
            raise RuntimeError("boom")

        def test_2_sees_nothing(gmem, faults):
            gmem.convert_private(0, "2M")
            gmem.convert_shared(0, "2M")
            assert faults.fired == []
            assert all(not a.live for a in LEAKED)
            assert not faults_engine.current().armings()
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)


def test_arming_outside_any_test_does_not_fire_inside(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import faults
        # armed at import, in no test's scope: tests do not inherit it
        faults.inject("kvm_gmem_convert_compute_work", "ENOMEM", times=None)

        def test_clean(gmem):
            gmem.convert_private(0, "2M")
        """
    )
    # in a subprocess: in-process, the module would be imported inside this test's own scope
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_setup_error_still_closes_scope(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import faults
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture fails")

        @pytest.mark.enomem("kvm_gmem_convert_compute_work")
        def test_1(gmem, broken):
            pass

        def test_2(gmem):
            assert faults.current().name == "test_setup_error_still_closes_scope.py::test_2"
            gmem.convert_private(0, "2M")
        """
    )
    pytester.runpytest().assert_outcomes(passed=1, errors=1)


THREAD_HELPER = """
import contextvars
import threading

import faults as faults_engine
import pytest
from pytest_gmem import ConversionError

P = "kvm_gmem_convert_compute_work"

def in_thread(fn, copy_context=False):
    box = {}
    ctx = contextvars.copy_context() if copy_context else None
    def run():
        try:
            ctx.run(fn) if ctx is not None else fn()
        except BaseException as exc:
            box["e"] = exc
    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
"""


def test_faults_fixture_arms_in_the_test_scope_from_a_thread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        THREAD_HELPER
        + """
def test_1_fixture_arms_in_a_thread(gmem, faults):
    in_thread(lambda: faults.inject(P, "ENOMEM", times=None))
    with pytest.raises(ConversionError):          # the test's own scope: its thread sees it
        gmem.convert_private(0, "2M")
    assert [f.label() for f in faults.fired] == [f"{P}:ENOMEM#1"]

def test_2_thread_sees_nothing(gmem):
    in_thread(lambda: gmem.convert_private(0, "2M"))
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_root_arming_from_a_thread_fails_the_test_and_is_disarmed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        THREAD_HELPER
        + """
def test_1_arms_in_the_root(gmem):
    in_thread(lambda: faults_engine.inject(P, "ENOMEM", times=None, source="my thread"))

@pytest.fixture
def arms_at_teardown():
    yield
    in_thread(lambda: faults_engine.inject(P, "ENOMEM", times=None, source="my fixture"))

def test_2_fixture_arms_in_the_root(arms_at_teardown):
    pass

def test_3_thread_sees_nothing(gmem):
    in_thread(lambda: gmem.convert_private(0, "2M"))
    from faults.scope import _ROOT
    assert not _ROOT.armings()
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*gmem: test_*::test_1_arms_in_the_root armed 1 fault(s) in the process-wide root faults scope*",
            f"  {'kvm_gmem_convert_compute_work'}: ENOMEM times=inf  [my thread]",
            "They were disarmed. Arm through the `faults` fixture*or arm in the test's thread.",
        ]
    )
    # (brackets are a character class in fnmatch: '?' stands for them)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_2_fixture_arms_in_the_root*",
                                 "*ENOMEM times=inf  ?my fixture?"])


def test_markers_reach_a_thread_that_runs_in_a_copy_of_the_context(pytester: pytest.Pytester) -> None:
    # docs/fixtures.md: markers arm the test's context; a plain thread does not see them.
    pytester.makepyfile(
        THREAD_HELPER
        + """
@pytest.mark.enomem(P)
def test_plain_thread(gmem):
    in_thread(lambda: gmem.convert_private(0, "2M"))

@pytest.mark.enomem(P)
def test_copied_context(gmem):
    with pytest.raises(ConversionError):
        in_thread(lambda: gmem.convert_private(0, "2M"), copy_context=True)
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)
