"""Several threads hitting one shared arming at once: the slow path is serialised.

The threads share the scope the test armed in (``faults.activate``): the root scope when run
without the pytest plugin, the test's own scope under it (which also keeps the arming from
outliving the test)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

import faults

P = faults.declare("t_faults_threads_p", {"ENOMEM"}, "hit from several threads")
THREADS = 4
HITS = 5000


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    """Switch threads as often as possible so that races show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def hammer(n: int) -> tuple[int, list[BaseException]]:
    """``THREADS`` threads each hit P ``n`` times; the number of faults and the exceptions."""
    fired: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)
    shared = faults.current()

    def work() -> None:
        faults.activate(shared)
        start.wait()
        for _ in range(n):
            try:
                if P.hit() is not None:
                    fired.append(1)
            except BaseException as e:  # the test reports every exception
                errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(fired), errors


def test_unlimited_arming_counts_every_hit_of_every_thread() -> None:
    with faults.inject("t_faults_threads_p", "ENOMEM", times=None) as a:
        fired, errors = hammer(HITS)
    assert errors == []
    assert a.hits == THREADS * HITS and a.fired == fired == THREADS * HITS


@pytest.mark.parametrize("trial", range(20))
def test_nth_fires_exactly_once_across_threads(trial: int) -> None:
    with faults.inject("t_faults_threads_p", "ENOMEM", nth=50) as a:
        fired, errors = hammer(100)
    assert errors == []
    assert a.hits == THREADS * 100 and a.fired == fired == 1


def test_times_is_respected_across_threads() -> None:
    with faults.inject("t_faults_threads_p", "ENOMEM", every=100, times=7) as a:
        fired, errors = hammer(HITS)
    assert errors == []
    assert a.hits == THREADS * HITS and fired == a.fired == 7
