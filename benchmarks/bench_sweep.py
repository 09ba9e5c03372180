"""Cost of a fault sweep: scenarios per second, pytest-free and through pytest.

    python benchmarks/bench_sweep.py [--revision fixed] [--skip-pytest]

Reference workload: a private 4M file of 2M HugeTLB folios with data in both huge pages
(setup, not swept), then ``convert_shared(0, "4M")`` (the operation swept: every ENOMEM point
it reaches, every nth hit -- 1,000+ scenarios, most of them in the per-piece re-adds of the two
splits). Prints:

1. pytest-free, through ``pytest_gmem.sweep.run_sweep`` on one core: scenarios per second when
   every scenario rebuilds the state with ``setup()`` (from scratch) and when it resumes from a
   ``copy.deepcopy`` of the state built once (snapshot-and-resume);
2. the same sweep as a ``fault_sweep`` test through pytest: wall time with ``-n 0`` and ``-n 2``
   and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

from pytest_gmem.model import Host
from pytest_gmem.sweep import SweepSpec, run_sweep


def setup(revision: str) -> Any:
    host = Host(hugetlb={"2M": 8}, revision=revision)
    g = host.create_vm().create_guest_memfd(size="4M", page_size="2M", mmap=True, init_private=True)
    g.guest_write(0, b"private data")
    g.guest_write(2 << 20, b"second page")
    return (host, g)


def op(state: Any) -> None:
    _host, g = state
    try:
        g.convert_shared(0, "4M")
    except OSError:
        pass


def pytest_free(revision: str) -> None:
    spec = SweepSpec()
    for resume in (False, True):
        t = time.perf_counter()
        results = run_sweep(lambda: setup(revision), op, spec, revision=revision, resume=resume)
        dt = time.perf_counter() - t
        how = "resume from a deepcopy of the setup state" if resume else "setup() from scratch per scenario"
        print(f"pytest-free, {revision}, {how}: {len(results)} scenarios in {dt:.2f}s = "
              f"{len(results) / dt:,.0f} scenarios/s")


TEST_FILE = '''
import pytest


@pytest.fixture
def data(gmem):
    gmem.guest_write(0, b"private data")
    gmem.guest_write(2 << 20, b"second page")
    return gmem


@pytest.mark.gmem(size="4M", page_size="2M", init_private=True, revision="{revision}")
@pytest.mark.fault_sweep()
def test_sweep(data):
    try:
        data.convert_shared(0, "4M")
    except OSError:
        pass
'''


def through_pytest(revision: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "test_bench_sweep.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(textwrap.dedent(TEST_FILE.format(revision=revision)))
        times = {}
        for n in ("0", "2"):
            cmd = [sys.executable, "-m", "pytest", path, "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                   "-n", n, "--gmem-seed=1"]
            t = time.perf_counter()
            # bytecode on (as .ci/run does), hypothesis's plugin off: its summary imports
            # hypothesis (~1s) in both runs, which says nothing about sweeps
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            proc = subprocess.run([*cmd, "-p", "no:hypothesispytest"], capture_output=True, text=True, cwd=tmp,
                                  check=False, env=env)
            times[n] = time.perf_counter() - t
            last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
            print(f"pytest -n {n}: {times[n]:.2f}s wall ({last.strip('= ')})")
        print(f"speed-up of -n 2 over -n 0: {times['0'] / times['2']:.2f}x (on {os.cpu_count()} CPUs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revision", default="fixed")
    parser.add_argument("--skip-pytest", action="store_true")
    args = parser.parse_args()
    pytest_free(args.revision)
    if not args.skip_pytest:
        through_pytest(args.revision)


if __name__ == "__main__":
    main()
