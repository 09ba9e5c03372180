"""Cost of a fault sweep: scenarios per second, pytest-free and through pytest.

    python benchmarks/bench_sweep.py [--revision fixed] [--skip-pytest] [--repeats 3] [--table] [--heavy]

Reference workload: a private 4M file of 2M HugeTLB folios with data in both huge pages
(setup, not swept), then ``convert_shared(0, "4M")`` (the operation swept: every ENOMEM point
it reaches, every nth hit -- 1,000+ scenarios, most of them in the per-piece re-adds of the two
splits). Prints:

1. pytest-free, through ``pytest_gmem.sweep.run_sweep`` on one core: scenarios per second when
   every scenario rebuilds the state with ``setup()`` (from scratch) and when it resumes from a
   ``copy.deepcopy`` of the state built once (snapshot-and-resume);
   then the time per scenario of a swept body of 4 and of 64 conversions (the rollback check
   on, as sweep items have it);
2. the census cache with random seeds (as by default): cold then warm, ``-n 0`` and ``-n 2``,
   with how many censuses each run computed and read (a warm run computes none); the bystander
   ratio: 2,000 empty tests with the plugin loaded against without it;
3. the same sweep as a ``fault_sweep`` test through pytest: medians of the wall times with
   ``-n 0`` and ``-n 2`` (runs interleaved) and the speed-up;
4. the ceiling: the same number of pytest items that only spin for as long as a sweep item's
   share of the ``-n 0`` run (no gmem at all), with ``-n 0`` and ``-n 2``: the speed-up
   pytest-xdist itself gives items of that size on this machine, and the share of it the sweep
   gets. ``--table`` adds xdist's own speed-up for 200 spinning items of 5 to 50 ms;
5. ``--heavy``: the same -n 0 / -n 2 comparison for a sweep whose scenarios cost tens of
   milliseconds (a 512M guest sharing and taking back one 4K page in each of its 256 huge
   pages; every ENOMEM of the metadata stash: 256 items), where xdist's per-item cost is small.

On a 2-CPU machine ``-n 2`` runs three busy processes (the controller and two workers) on two
CPUs, every item costs a worker and the controller about 2 ms of messaging, and the workers
start ~1.5 s later than a ``-n 0`` run starts testing: see docs/sweeps.md, "Parallel sweeps".
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
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


def _scenario_cost(revision: str, k: int, check: bool) -> tuple[float, int]:
    """Seconds per scenario (census excluded; best of 3 passes of at least 0.2 s) of a swept
    body of ``k`` conversions of 4K pages, one per huge page of a 128M file, swept over every
    ENOMEM of the work list and the metadata stash (``k`` scenarios), rebuilt per scenario."""
    from pytest_gmem.sweep import BodyCensus, Scenario, plan, run_scenario

    def build() -> Any:
        host = Host(hugetlb={"2M": 80}, revision=revision, check_rollback=check)
        g = host.create_vm().create_guest_memfd(size="128M", page_size="2M", mmap=True, init_private=True)
        return (host, g)

    def body(state: Any) -> None:
        _host, g = state
        for i in range(k):
            try:
                g.convert_shared((i << 21) + 4096, "4K")
            except OSError:
                pass

    import faults

    with faults.scope(inherit=False, record=True) as sc:
        bc = BodyCensus(sc)
        body(build())
        census = bc.stop()
    todo = plan(SweepSpec(points=("kvm_gmem_convert_compute_work", "guestmem_hugetlb_stash_metadata")),
                census.hits, Scenario((), revision))
    best = float("inf")
    for _ in range(3):
        n, t = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - t < 0.2:
            for scenario in todo:
                run_scenario(build(), body, scenario)
            n += len(todo)
        best = min(best, (time.perf_counter() - t) / n)
    return best, len(todo)


def linear_cost(revision: str) -> None:
    """Time per scenario against the number of conversions in the swept body (pytest-free, the
    rollback check on, as sweep items have it), and the cost per conversion: a body of 4 and of
    64 conversions. Every scenario replays the whole body, so a scenario costs its fixed part
    plus its conversions; the cost per conversion staying flat is what keeps the total linear
    in (scenarios x conversions)."""
    per = {(k, check): _scenario_cost(revision, k, check) for k in (4, 64) for check in (True, False)}
    (t4, n4), (t64, n64) = per[4, True], per[64, True]
    off4, off64 = per[4, False][0], per[64, False][0]
    print(f"linear cost (pytest-free, check_rollback on, census excluded): {n4} scenarios of 4 conversions "
          f"{t4 * 1e3:.3f} ms each, {n64} of 64 conversions {t64 * 1e3:.3f} ms each: {t64 / t4:.2f}x per "
          f"scenario for 16x the conversions; per conversion {t4 / 4 * 1e6:.1f} us at 4, {t64 / 64 * 1e6:.1f} "
          f"us at 64 ({t64 / 64 / (t4 / 4):.2f}x); the rollback check's share {1 - off64 / t64:.0%} at 64 "
          f"(check off: {off4 * 1e3:.3f} / {off64 * 1e3:.3f} ms per scenario)")


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


HEAVY_FILE = '''
import pytest


@pytest.mark.gmem(size="512M", page_size="2M", init_private=True, hugetlb={{"2M": 300}}, revision="{revision}")
@pytest.mark.fault_sweep(points="guestmem_hugetlb_stash_metadata")
def test_heavy_sweep(gmem):
    # a guest sharing one 4K bounce page in each of its 256 huge pages, then taking it back
    for k in range(256):
        off = k << 21
        gmem.guest_write(off, b"x")
        try:
            gmem.convert_shared(off + 4096, "4K")
            gmem.convert_private(off + 4096, "4K")
        except OSError:
            pass
'''


BUSY_FILE = """
import os, time

import pytest

N = int(os.environ["BUSY_N"])
SECONDS = float(os.environ["BUSY_MS"]) / 1000


@pytest.mark.parametrize("i", range(N))
def test_busy(i):
    end = time.perf_counter() + SECONDS
    while time.perf_counter() < end:
        pass
"""


def run_pytest(path: str, n: str, cwd: str, extra: dict[str, str] | None = None,
               *args: str, cache: bool = False) -> tuple[float, float, str]:
    """(wall seconds, pytest's own "in X s", summary line) of one pytest run in a subprocess;
    ``cache``: with pytest's cache (the census cache), and the census line appended."""
    nocache = [] if cache else ["-p", "no:cacheprovider"]
    cmd = [sys.executable, "-m", "pytest", path, "-q", *nocache, "-p", "no:randomly",
           "-p", "no:hypothesispytest", "-p", "no:benchmark", "-n", n, *args]
    # bytecode on (as .ci/run does); hypothesis's and pytest-benchmark's plugins off: they cost
    # the same in both runs and say nothing about sweeps
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra or {})
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False, env=env)
    wall = time.perf_counter() - t
    last = proc.stdout.strip().splitlines()[-1].strip("= ") if proc.stdout.strip() else proc.stderr[-300:]
    if proc.returncode != 0:
        raise SystemExit(f"pytest -n {n} failed ({proc.returncode}): {last}\n{proc.stdout[-2000:]}")
    m = re.search(r" in ([0-9.]+)s", last)
    census = re.search(r"gmem: sweep censuses: .*", proc.stdout)
    if cache and census:
        last += f" | {census.group(0)}"
    return wall, float(m.group(1)) if m else wall, last


def census_runs(path: str, cwd: str, revision: str) -> None:
    """The census cache across sessions with random seeds: cold then warm, -n 0 and -n 2."""
    import shutil

    for n in ("0", "2"):
        shutil.rmtree(os.path.join(cwd, ".pytest_cache"), ignore_errors=True)
        for state in ("cold", "warm"):
            wall, _own, last = run_pytest(path, n, cwd, None, cache=True)  # a new random seed each run
            print(f"  cache on, -n {n}, {state}: {wall:.2f}s wall ({last})")


def bystanders(cwd: str, items: int = 2000) -> None:
    """A test that uses no gmem fixture and no marker, with the plugin loaded and without it."""
    busy = os.path.join(cwd, "test_busy.py")
    env = {"BUSY_N": str(items), "BUSY_MS": "0"}
    times: dict[str, list[float]] = {"gmem": [], "bare": []}
    for _ in range(3):
        times["gmem"].append(run_pytest(busy, "0", cwd, env, "-p", "gmem")[1])
        times["bare"].append(run_pytest(busy, "0", cwd, env, "-p", "no:gmem")[1])
    g, b = statistics.median(times["gmem"]), statistics.median(times["bare"])
    print(f"  bystanders: {items} empty tests, plugin loaded {g:.2f}s, not loaded {b:.2f}s: "
          f"{g / b:.2f}x (goal <= 1.1x; pytest's 'in X s', medians of 3)")


def speedup(path: str, cwd: str, repeats: int, extra: dict[str, str] | None = None,
            *args: str) -> tuple[float, float, float, str]:
    """Median walls of -n 0 and -n 2 (runs interleaved), pytest's median "in X s" of -n 0, and
    the last -n 0 summary line."""
    walls: dict[str, list[float]] = {"0": [], "2": []}
    inner: list[float] = []
    last = ""
    for _ in range(repeats):
        for n in ("0", "2"):
            wall, own, line = run_pytest(path, n, cwd, extra, *args)
            walls[n].append(wall)
            if n == "0":
                inner.append(own)
                last = line
    return statistics.median(walls["0"]), statistics.median(walls["2"]), statistics.median(inner), last


def through_pytest(revision: str, repeats: int, table: bool, heavy: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "test_bench_sweep.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(textwrap.dedent(TEST_FILE.format(revision=revision)))
        busy = os.path.join(tmp, "test_busy.py")
        with open(busy, "w", encoding="utf-8") as fh:
            fh.write(BUSY_FILE)
        census_runs(path, tmp, revision)
        bystanders(tmp)
        t0, t2, inner0, last = speedup(path, tmp, repeats, None, "--gmem-seed=1")
        items = int(re.search(r"(\d+) passed", last).group(1))  # type: ignore[union-attr]
        print(f"through pytest, {items} sweep items ({last}), medians of {repeats} interleaved runs:")
        print(f"  -n 0: {t0:.2f}s wall   -n 2: {t2:.2f}s wall   speed-up {t0 / t2:.2f}x (goal 1.7x; "
              f"{os.cpu_count()} CPUs)")
        # The ceiling: the same number of items doing nothing but spin for as long as a sweep
        # item's share of the -n 0 run beyond an empty pytest item: what any plugin could get.
        _w, empty, _l = run_pytest(busy, "0", tmp, {"BUSY_N": str(items), "BUSY_MS": "0"}, "-p", "no:gmem")
        spin_ms = max(0.0, (inner0 - empty) / items * 1000)
        b0, b2, _i, _l = speedup(busy, tmp, repeats, {"BUSY_N": str(items), "BUSY_MS": f"{spin_ms:.3f}"},
                                 "-p", "no:gmem")
        print(f"  ceiling on this machine: {items} pytest items spinning {spin_ms:.2f} ms each, no gmem: "
              f"-n 0 {b0:.2f}s, -n 2 {b2:.2f}s, speed-up {b0 / b2:.2f}x")
        print(f"  the sweep gets {t0 / t2 / (b0 / b2):.0%} of the speed-up xdist itself allows for items this size")
        if heavy:
            hpath = os.path.join(tmp, "test_bench_heavy.py")
            with open(hpath, "w", encoding="utf-8") as fh:
                fh.write(textwrap.dedent(HEAVY_FILE.format(revision=revision)))
            h0, h2, hin, hlast = speedup(hpath, tmp, repeats, None, "--gmem-seed=1")
            hitems = int(re.search(r"(\d+) passed", hlast).group(1))  # type: ignore[union-attr]
            print(f"  heavy sweep: {hitems} items of about {hin / hitems * 1000:.0f} ms (512M guest, 512 "
                  f"conversions per scenario; {hlast}):")
            print(f"    -n 0: {h0:.2f}s wall   -n 2: {h2:.2f}s wall   speed-up {h0 / h2:.2f}x")
        if table:
            print("  xdist's own speed-up by item size (200 spinning items, no gmem):")
            for ms in (5, 10, 25, 50):
                b0, b2, _i, _l = speedup(busy, tmp, 1, {"BUSY_N": "200", "BUSY_MS": str(ms)}, "-p", "no:gmem")
                print(f"    {ms:3d} ms per item: -n 0 {b0:6.2f}s  -n 2 {b2:6.2f}s  {b0 / b2:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revision", default="fixed")
    parser.add_argument("--skip-pytest", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved -n 0 / -n 2 runs (medians)")
    parser.add_argument("--table", action="store_true", help="also xdist's own speed-up by item size")
    parser.add_argument("--heavy", action="store_true",
                        help="also a sweep whose scenarios cost tens of milliseconds (512M guest)")
    args = parser.parse_args()
    pytest_free(args.revision)
    linear_cost(args.revision)
    if not args.skip_pytest:
        through_pytest(args.revision, args.repeats, args.table, args.heavy)


if __name__ == "__main__":
    main()
