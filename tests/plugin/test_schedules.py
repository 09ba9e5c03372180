"""Hypothesis fault schedules in a downstream suite: the falsifying schedule is printed as a
``--gmem-fault`` line, and that line makes the plain test fail the same way."""

from __future__ import annotations

import re

import pytest

#: A user's retry loop around convert_private, with a planted bug (an ENOMEM on a retry is taken
#: for success), tested under drawn schedules and, the same check, as a plain test.
RETRY_SUITE = """
import errno

import pytest
from hypothesis import example, given, settings, Phase

from faults import Schedule
from faults.strategies import schedules
from pytest_gmem import ConversionError, Host

POINTS = ["kvm_gmem_convert_compute_work", "kvm_gmem_has_safe_refcount", "kvm_gmem_shareability_store"]


def convert_private_with_retry(gmem, offset, size, attempts=3):
    for attempt in range(attempts):
        try:
            gmem.convert_private(offset, size)
            return
        except ConversionError as exc:
            if exc.errno == errno.EAGAIN and attempt + 1 < attempts:
                continue
            if exc.errno == errno.ENOMEM and attempt > 0:
                return  # the planted bug: an ENOMEM on a retry is taken for success
            raise


def check_retry(gmem):
    gmem.guest_write(0, b"data")
    try:
        convert_private_with_retry(gmem, 0, "16K")
    except ConversionError:
        assert gmem.ranges() == [(0, 16 << 10, "shared")], "failed, yet changed"
    else:
        assert gmem.ranges() == [(0, 16 << 10, "private")], "returned, yet not converted"


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(schedules(points=POINTS, max_nth=3))
def test_retry_under_schedules(schedule):
    host = Host()                       # a fresh host and file per example, built before arming
    gmem = host.create_vm().create_guest_memfd(size="16K", page_size="4K", mmap=True)
    with schedule:                      # the example's faults end with the block
        check_retry(gmem)
    host.check()


@pytest.mark.gmem(size="16K", page_size="4K")
def test_retry(gmem):                   # the same check: --gmem-fault arms at the start of the body
    check_retry(gmem)
"""

REPRODUCE_LINE = re.compile(r"reproduce without Hypothesis: --gmem-fault '([^']*)'")


def test_the_falsifying_schedule_reproduces_with_gmem_fault(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_retry=RETRY_SUITE)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    assert "FAILED test_retry.py::test_retry_under_schedules" in out
    found = REPRODUCE_LINE.search(out)
    assert found is not None, out
    text = found.group(1)
    # Shrunk to the two faults the bug needs: an unexpected reference (EAGAIN) on the first
    # attempt and ENOMEM on a later one.
    assert f"schedule=Schedule('{text}')" in out
    armings = text.split(";")
    assert len(armings) == 2, text
    assert re.fullmatch(r"kvm_gmem_convert_compute_work=ENOMEM@nth=[23]", armings[0]), text
    assert re.fullmatch(r"kvm_gmem_has_safe_refcount=(extra|speculative)_refcount@nth=1", armings[1]), text
    assert "returned, yet not converted" in out

    # The line, as printed, makes the plain test fail the same way, without Hypothesis.
    again = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "test_retry.py::test_retry",
                               "--gmem-fault", text)
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*AssertionError: returned, yet not converted*"])
    again.stdout.fnmatch_lines([f"*fault {text!r} (from --gmem-fault)*"])


def test_the_repr_is_an_explicit_example(pytester: pytest.Pytester) -> None:
    # The other way back: paste the falsifying Schedule(...) into @example and run only it.
    text = "kvm_gmem_convert_compute_work=ENOMEM@nth=2;kvm_gmem_has_safe_refcount=extra_refcount@nth=1"
    suite = RETRY_SUITE.replace(
        "@settings(max_examples=200, derandomize=True, database=None, deadline=None)",
        f"@settings(phases=[Phase.explicit], database=None, deadline=None)\n@example(Schedule({text!r}))",
    )
    pytester.makepyfile(test_retry=suite)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "-k", "schedules")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: returned, yet not converted*"])
    # Without the bug's second fault the explicit example passes.
    pytester.makepyfile(test_retry=suite.replace(text, text.split(";")[1]))
    pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "-k", "schedules").assert_outcomes(passed=1)


def test_examples_leave_nothing_armed_for_the_next_example_or_test(pytester: pytest.Pytester) -> None:
    # gmem_factory makes a new file per example (the health check about function-scoped
    # fixtures is suppressed on purpose: the factory is not reset, the files it makes are new).
    pytester.makepyfile(
        """
        import faults
        import pytest
        from hypothesis import HealthCheck, given, settings
        from faults.strategies import schedules

        POINTS = ["kvm_gmem_convert_compute_work", "kvm_gmem_shareability_store"]
        SEEN = []

        @pytest.mark.gmem(revision="prealloc")  # under fixed, a failed rollback WARNs: not the point here
        @settings(max_examples=30, database=None, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(schedules(points=POINTS, min_faults=1))
        def test_factory(gmem_factory, schedule):
            SEEN.append(faults.armed(*POINTS))
            gmem = gmem_factory(size="16K", page_size="4K")
            schedule.arm()            # no with block: disarmed when the example ends
            assert faults.armed(*[a.pattern for a in schedule.armings])
            try:
                gmem.convert_private(0, "16K")
            except OSError:
                pass

        def test_next(gmem):
            assert SEEN and not any(SEEN)
            assert not faults.armed(*POINTS)
            gmem.convert_private(0, "2M")
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "never fired" not in result.stdout.str()  # drawn faults an example never reached
