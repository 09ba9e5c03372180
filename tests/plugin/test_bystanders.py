"""Tests that use nothing of the plugin take its light path: a plain faults scope and the
root-scope leak check. What they arm still ends with them, a fault armed in the root still fails
them, a model they build themselves is still recorded, and the public outcome hook still sees
every test."""

from __future__ import annotations

import json
import re

import pytest


def test_plain_inject_in_a_bystander_ends_with_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import faults
        from pytest_gmem.model import Host

        LEAKED = []

        def test_1_bystander_arms_and_fails():
            LEAKED.append(faults.inject("kvm_gmem_convert_compute_work", "ENOMEM", times=None))
            raise RuntimeError("boom")

        def test_2_model_of_its_own_sees_nothing():
            g = Host().create_vm().create_guest_memfd(size="4M", mmap=True)
            g.convert_private(0, "2M")
            assert all(not a.live for a in LEAKED)
            assert not faults.current().armings()

        def test_3_gmem_test_sees_nothing(gmem):
            gmem.convert_private(0, "2M")
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--gmem-report=r.json")
    result.assert_outcomes(passed=2, failed=1)
    tests = json.loads((pytester.path / "r.json").read_text())["tests"]
    # the bystander that built its own model is recorded with the points it reached
    own = tests["test_plain_inject_in_a_bystander_ends_with_it.py::test_2_model_of_its_own_sees_nothing"]
    assert "kvm_gmem_convert_compute_work" in own["reached"]


def test_root_arming_from_a_bystanders_thread_fails_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import contextvars, threading
        import faults

        def test_1_arms_in_the_root():
            # a thread started with an empty context arms in the process-wide root scope
            t = threading.Thread(target=contextvars.Context().run,
                                 args=(faults.inject, "kvm_gmem_convert_compute_work", "ENOMEM"),
                                 kwargs={"times": None})
            t.start(); t.join()

        def test_2_sees_nothing(gmem):
            gmem.convert_private(0, "2M")
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)  # the error is test 1's teardown
    result.stdout.fnmatch_lines(["*armed 1 fault(s) in the process-wide root faults scope*"])


def test_outcome_hook_sees_bystanders(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        SEEN = []
        def pytest_gmem_test_outcome(item, outcome, record):
            SEEN.append((item.name, outcome, sorted(record["reached"])))
        def pytest_sessionfinish():
            print("SEEN", SEEN)
        """
    )
    pytester.makepyfile(
        """
        def test_bystander():
            pass

        def test_failing_bystander():
            assert 0
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=1, failed=1)
    assert "SEEN [('test_bystander', 'passed', []), ('test_failing_bystander', 'failed', [])]" in result.stdout.str()


def test_faker_is_seeded_without_an_autouse_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_a(faker, request):
            assert "faker_seed" in request.fixturenames
            print("NAME", faker.name())

        def test_plain(request):
            assert "faker_seed" not in request.fixturenames
        """
    )
    first = pytester.runpytest("-p", "no:randomly", "-s", "--gmem-seed=5")
    first.assert_outcomes(passed=2)
    second = pytester.runpytest("-p", "no:randomly", "-s", "--gmem-seed=5")
    names = [line for line in first.outlines if "NAME" in line]
    assert names and names == [line for line in second.outlines if "NAME" in line]


def test_fault_fired_hook_sees_a_bystanders_own_fault(pytester: pytest.Pytester) -> None:
    # the coverage contexts (--gmem-error-paths) learn of fired faults through this hook
    pytester.makeconftest(
        """
        FIRED = []
        def pytest_gmem_fault_fired(item, fired):
            FIRED.append((item.name, fired.point))
        def pytest_sessionfinish():
            print("FIRED", FIRED)
        """
    )
    pytester.makepyfile(
        """
        import faults, pytest
        from pytest_gmem.model import Host

        def test_own_host_own_fault():
            g = Host().create_vm().create_guest_memfd(size="4M", mmap=True)
            faults.inject("kvm_gmem_convert_compute_work", "ENOMEM")
            with pytest.raises(OSError):
                g.convert_private(0, "2M")
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=1)
    assert "FIRED [('test_own_host_own_fault', 'kvm_gmem_convert_compute_work')]" in result.stdout.str()


def test_a_bystander_keeps_nothing_of_the_plugin_after_it_ran(pytester: pytest.Pytester) -> None:
    # items live as long as the session: a run kept per bystander (a faults scope, its lists)
    # would grow the heap, and every full garbage collection, with the size of the suite
    pytester.makeconftest(
        """
        from pytest_gmem import _keys

        KEPT = []

        def pytest_sessionfinish(session):
            for item in session.items:
                KEPT.extend((item.name, k) for k in ("RUN", "LIGHT", "PHASES")
                            if getattr(_keys, k) in item.stash)
            print("KEPT", KEPT)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(3))
        def test_bystander(i):
            assert i >= 0
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=3)
    assert "KEPT []" in result.stdout.str()


@pytest.mark.parametrize("args", [(), ("--gmem-verify-determinism",), ("--gmem-sweep-batch=off",)])
def test_a_gmem_test_lets_go_of_its_model_after_its_last_report(pytester: pytest.Pytester,
                                                                args: tuple[str, ...]) -> None:
    # a run holds the test's hosts (a 1 TiB guest's model is tens of MB) and its fault trace:
    # kept by every item until the session ends, a suite's memory grew with its length
    pytester.makeconftest(
        """
        import gc
        import weakref

        from pytest_gmem import _keys
        from pytest_gmem.model import Host

        KEPT, HOSTS = [], []
        _init = Host.__init__

        def _track(self, *args, **kwargs):
            _init(self, *args, **kwargs)
            HOSTS.append(weakref.ref(self))

        Host.__init__ = _track

        def pytest_sessionfinish(session):
            for item in session.items:
                KEPT.extend((item.name, k) for k in ("RUN", "LIGHT", "PHASES")
                            if getattr(_keys, k) in item.stash)
            gc.collect()
            print("KEPT", KEPT, "HOSTS ALIVE", sum(ref() is not None for ref in HOSTS), "OF", len(HOSTS))
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gmem(size="4M", page_size="2M")
        def test_round_trip(gmem):
            gmem.convert_private(0, "2M")

        @pytest.mark.gmem(size="4M", page_size="2M")
        def test_fails(gmem):
            gmem.convert_private(0, "2M")
            assert False, "a failing test lets go too"

        @pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
        @pytest.mark.fault_sweep(points="guestmem_hugetlb_stash_metadata", max_nth=2)
        def test_swept(gmem):
            gmem.guest_write(0, b"x")
            try:
                gmem.convert_shared(0, "4K")
            except OSError:
                pass
        """
    )
    # in a subprocess: an in-process run's hook recorder keeps every call's arguments
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", "-s", *args)
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["passed"] >= 3, outcomes
    found = re.search(r"KEPT (.*) HOSTS ALIVE (\d+) OF (\d+)", result.stdout.str())
    assert found is not None, result.stdout.str()
    kept, alive, made = found.group(1), int(found.group(2)), int(found.group(3))
    assert kept == "[]"
    # test_fails is not the last test: pytest may keep the last failure's traceback (for pdb)
    assert made >= 4 and alive == 0, found.group(0)
