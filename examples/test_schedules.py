"""Property tests under drawn fault schedules (docs/strategies.md): a retry loop that must either
convert the range or fail leaving it untouched, whatever faults hit it.

The prealloc revision: under fixed (the default) the shrinker soon finds
'kvm_gmem_shareability_store=ENOMEM@nth=1;kvm_gmem_shareability_store=ENOMEM@nth=2', a failed
rollback that only WARNs (docs/model.md), which is that revision's known defect."""

import errno

import pytest
from hypothesis import HealthCheck, given, settings

from faults.strategies import schedules
from pytest_gmem import ConversionError, Host

POINTS = ["kvm_gmem_convert_compute_work", "kvm_gmem_has_safe_refcount", "kvm_gmem_shareability_store"]


def convert_private_with_retry(gmem, offset, size, attempts=3):
    """Retry while the kernel says EAGAIN (an unexpected reference on a folio), up to attempts."""
    for attempt in range(attempts):
        try:
            gmem.convert_private(offset, size)
            return
        except ConversionError as exc:
            if exc.errno != errno.EAGAIN or attempt + 1 == attempts:
                raise


def check_retry(gmem):
    gmem.guest_write(0, b"data")
    try:
        convert_private_with_retry(gmem, 0, "16K")
    except ConversionError as exc:
        assert exc.errno in (errno.EAGAIN, errno.ENOMEM)
        assert gmem.ranges() == [(0, 16 << 10, "shared")]  # failed: nothing changed
    else:
        assert gmem.ranges() == [(0, 16 << 10, "private")]  # returned: converted
    assert gmem.guest_read(0, 4) == b"data"


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(schedules(points=POINTS, max_faults=3, max_nth=3))
def test_retry_under_any_schedule(schedule):
    host = Host(revision="prealloc")  # a fresh host and file per example, built before arming
    gmem = host.create_vm().create_guest_memfd(size="16K", page_size="4K", mmap=True)
    with schedule:  # this example's faults, disarmed when the block ends
        check_retry(gmem)
    host.check()  # what the plugin checks after a test, for the hosts it built
    assert not host.warnings


@pytest.mark.gmem(revision="prealloc")
@settings(max_examples=50, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedules(points=POINTS, max_faults=3, max_nth=3))
def test_retry_with_the_factory(gmem_factory, schedule):
    # gmem_factory is one object for every example, but each call makes a new file (checked
    # with the test's host, WARNs included, after the test): the health check is suppressed on
    # purpose.
    gmem = gmem_factory(size="16K", page_size="4K")
    with schedule:
        check_retry(gmem)


@pytest.mark.gmem(size="16K", page_size="4K", revision="prealloc")
def test_retry(gmem):
    """The plain twin: reproduce a falsifying schedule with --gmem-fault '<its text>'."""
    check_retry(gmem)
