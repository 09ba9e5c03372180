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
