"""Cost of a fault sweep: the figures issue 11 asks for, measured in one run.

    python benchmarks/bench_sweep.py [--revision fixed] [--skip-pytest] [--repeats 1] [--table] [--heavy]

Reference workload (two tests, ~1,450 scenarios, every ENOMEM they reach): the README-style
sweep of a private 4M file of 2M HugeTLB folios with data in both huge pages converted to
shared (1,030 scenarios, most of them in the per-piece re-adds of the two splits), and a
16-case parametrized round trip (shared then private again, 4 offsets x 4 sizes, the first 20
hits of each point). Prints, in this order:

1. pytest-free (``pytest_gmem.sweep.run_sweep``, one core, the state rebuilt per scenario):
   scenarios per second of the reference workload (1b: the same with the rollback check on, which
   every sweep item runs and the plain runner does not: the like-for-like figure);
2. the time per scenario of a swept body of 4 and of 64 conversions (the rollback check on),
   per conversion, and the check's share;
3. the reference workload through pytest, census cache on, with batched items (the default)
   and one item per scenario (``--gmem-sweep-batch=off``): ``-n 0`` and ``-n 2``, each cold
   (an empty cache) then warm (the second run: ``0 computed``), scenarios per second from
   pytest's own "in X s" and the ratio to the pytest-free runner;
4. a sweep of 3,072 scenarios of 64 conversions each (24 cases x 128): ``-n 0`` and ``-n 2``;
5. the bystander ratio: 2,000 tests that use no gmem fixture, plugin loaded against not, and
   the cost of one more such test (the slope from 2,000 to 5,000 tests);
6. ``--table`` / ``--heavy``: xdist's own speed-up for spinning items of 5 to 50 ms, and a
   sweep whose scenarios cost ~100 ms (a 512M guest).

Timings on shared machines vary from run to run; the ratios measured within one run are
steadier. See docs/sweeps.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

from pytest_gmem.model import Host
from pytest_gmem.sweep import SweepSpec, run_sweep


def setup(revision: str, check: bool = False) -> Any:
    host = Host(hugetlb={"2M": 8}, revision=revision)
    host.check_rollback = check  # what a sweep item turns on (invariant 7 on every conversion)
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


OFFSETS = (0, 4096, 1 << 20, (2 << 20) - 4096)
SIZES = (4096, 8192, 64 << 10, 1 << 20)
ROUND_TRIP_MAX_NTH = 20


def round_trip(offset: int, size: int) -> Any:
    def body(state: Any) -> None:
        _host, g = state
        g.convert_shared(offset, size)
        g.convert_private(offset, size)

    return body


def pytest_free(revision: str, check: bool = False) -> float:
    """Scenarios per second of the reference workload, pytest-free (setup per scenario);
    ``check``: with the rollback check a sweep item runs (the like-for-like figure)."""
    n, t = 0, time.perf_counter()
    n += len(run_sweep(lambda: setup(revision, check), op, SweepSpec(), revision=revision, resume=False))
    for offset in OFFSETS:
        for size in SIZES:
            n += len(run_sweep(lambda: setup(revision, check), round_trip(offset, size),
                               SweepSpec(max_nth=ROUND_TRIP_MAX_NTH), revision=revision, resume=False))
    dt = time.perf_counter() - t
    how = "with the rollback check a sweep item runs" if check else "setup() per scenario"
    print(f"1{'b' if check else ''}. pytest-free, {revision}: the reference workload's {n} scenarios in {dt:.2f}s = "
          f"{n / dt:,.0f} scenarios/s (one core, {how})")
    return n / dt


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
    print(f"2. linear cost (pytest-free, check_rollback on, census excluded): {n4} scenarios of 4 conversions "
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


@pytest.mark.gmem(size="4M", page_size="2M", init_private=True, revision="{revision}")
@pytest.mark.fault_sweep(max_nth={max_nth})
@pytest.mark.parametrize("offset", {offsets})
@pytest.mark.parametrize("size", {sizes})
def test_round_trip(data, offset, size):
    try:
        data.convert_shared(offset, size)
        data.convert_private(offset, size)
    except OSError:
        pass
'''


BIG_FILE = '''
import pytest


@pytest.mark.gmem(size="128M", page_size="2M", init_private=True, hugetlb={{"2M": 80}}, revision="{revision}")
@pytest.mark.fault_sweep(points=("kvm_gmem_convert_compute_work", "kvm_gmem_shareability_store"))
@pytest.mark.parametrize("page", range(24))
def test_big_sweep(gmem, page):
    for i in range(64):  # 64 conversions of one 4K page, one per huge page
        try:
            gmem.convert_shared((i << 21) + (page << 12), "4K")
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
           "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:timeout", "-n", n, *args]
    # bytecode on (as .ci/run does); hypothesis's, pytest-benchmark's and pytest-timeout's plugins off: they cost
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


def _scenarios(last: str) -> int:
    """Scenarios of a run from its summary line (every item but the swept tests' own ones)."""
    return sum(int(n) for n in re.findall(r"(\d+) (?:passed|xfailed|failed|skipped)", last))


def reference_runs(path: str, cwd: str, free_rate: float, bases: int, checked_rate: float) -> dict[str, float]:
    """The reference workload through pytest with the census cache on: batched and one item
    per scenario, -n 0 and -n 2, cold (empty cache) then warm; returns seconds by run."""
    out: dict[str, float] = {}
    for batch in ("64", "off"):
        for n in ("0", "2"):
            shutil.rmtree(os.path.join(cwd, ".pytest_cache"), ignore_errors=True)
            for state in ("cold", "warm"):
                _wall, own, last = run_pytest(path, n, cwd, None, f"--gmem-sweep-batch={batch}", cache=True)
                scenarios = _scenarios(last) - bases
                out[f"{batch} {n} {state}"] = own
                census = re.search(r"sweep censuses: .*", last)
                print(f"   batch={batch:<3} -n {n} {state}: {scenarios} scenarios in {own:.2f}s = "
                      f"{scenarios / own:,.0f} scenarios/s ({scenarios / own / free_rate:.2f}x the pytest-free "
                      f"runner, {scenarios / own / checked_rate:.2f}x 1b; {census.group(0) if census else last})")
    for batch in ("64", "off"):
        for state in ("cold", "warm"):
            r = out[f"{batch} 0 {state}"] / out[f"{batch} 2 {state}"]
            print(f"   batch={batch:<3} {state}: -n 2 is {r:.2f}x -n 0 (goal: never slower, i.e. >= 1.00x)")
    return out


def bystanders(cwd: str, items: int = 2000, more: int = 5000) -> None:
    """A test that uses no gmem fixture and no marker, with the plugin loaded and without it: the
    ratio of whole runs of ``items`` tests, and of the cost of one more test (the slope between
    runs of ``items`` and ``more`` tests: what is paid per item, without the fixed costs)."""
    busy = os.path.join(cwd, "test_busy.py")
    times: dict[str, list[float]] = {"gmem": [], "bare": []}
    slopes: dict[str, list[float]] = {"gmem": [], "bare": []}
    for _ in range(3):
        for name, flag in (("gmem", "gmem"), ("bare", "no:gmem")):
            small = run_pytest(busy, "0", cwd, {"BUSY_N": str(items), "BUSY_MS": "0"}, "-p", flag)[1]
            large = run_pytest(busy, "0", cwd, {"BUSY_N": str(more), "BUSY_MS": "0"}, "-p", flag)[1]
            times[name].append(small)
            slopes[name].append((large - small) / (more - items))
    g, b = statistics.median(times["gmem"]), statistics.median(times["bare"])
    sg, sb = statistics.median(slopes["gmem"]), statistics.median(slopes["bare"])
    print(f"5. bystanders: {items} empty tests, plugin loaded {g:.2f}s, not loaded {b:.2f}s: {g / b:.2f}x; "
          f"one more test {sg * 1e6:.0f} us against {sb * 1e6:.0f} us: {sg / sb:.2f}x (goal <= 1.1x; "
          f"pytest's 'in X s', medians of 3; the slope from {items} to {more} tests)")


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


def write(cwd: str, name: str, text: str) -> str:
    path = os.path.join(cwd, name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(textwrap.dedent(text))
    return path


def through_pytest(revision: str, free_rate: float, repeats: int, table: bool, heavy: bool,
                   checked_rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write(tmp, "test_bench_sweep.py", TEST_FILE.format(
            revision=revision, max_nth=ROUND_TRIP_MAX_NTH, offsets=OFFSETS, sizes=SIZES))
        busy = write(tmp, "test_busy.py", BUSY_FILE)
        print("3. the reference workload through pytest (pytest's own 'in X s'; census cache on):")
        reference_runs(path, tmp, free_rate, bases=1 + len(OFFSETS) * len(SIZES), checked_rate=checked_rate)
        big = write(tmp, "test_bench_big.py", BIG_FILE.format(revision=revision))
        b0, b2, _inner, last = speedup(big, tmp, repeats, None, "--gmem-seed=1")
        print(f"4. big sweep, {_scenarios(last) - 24} scenarios of 64 conversions ({last}): -n 0 {b0:.2f}s wall, "
              f"-n 2 {b2:.2f}s wall: {b0 / b2:.2f}x (goal 1.7x; {os.cpu_count()} CPUs)")
        bystanders(tmp)
        if heavy:
            hpath = write(tmp, "test_bench_heavy.py", HEAVY_FILE.format(revision=revision))
            h0, h2, hin, hlast = speedup(hpath, tmp, repeats, None, "--gmem-seed=1")
            hitems = _scenarios(hlast)
            print(f"6. heavy sweep: {hitems} items of about {hin / hitems * 1000:.0f} ms (512M guest, 512 "
                  f"conversions per scenario; {hlast}): -n 0 {h0:.2f}s, -n 2 {h2:.2f}s, {h0 / h2:.2f}x")
        if table:
            print("6. xdist's own speed-up by item size (200 spinning items, no gmem):")
            for ms in (5, 10, 25, 50):
                s0, s2, _i, _l = speedup(busy, tmp, 1, {"BUSY_N": "200", "BUSY_MS": str(ms)}, "-p", "no:gmem")
                print(f"    {ms:3d} ms per item: -n 0 {s0:6.2f}s  -n 2 {s2:6.2f}s  {s0 / s2:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revision", default="fixed")
    parser.add_argument("--skip-pytest", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved -n 0 / -n 2 runs of the big sweep")
    parser.add_argument("--table", action="store_true", help="also xdist's own speed-up by item size")
    parser.add_argument("--heavy", action="store_true",
                        help="also a sweep whose scenarios cost tens of milliseconds (512M guest)")
    args = parser.parse_args()
    free_rate = pytest_free(args.revision)
    checked_rate = pytest_free(args.revision, check=True)
    linear_cost(args.revision)
    if not args.skip_pytest:
        through_pytest(args.revision, free_rate, args.repeats, args.table, args.heavy, checked_rate)


if __name__ == "__main__":
    main()
