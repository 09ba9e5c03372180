"""Model scale and speed figures (issue: the guest_memfd model).

Prints, measured in one run:
1. RSS and time for a 1 TiB guest backed by 1G pages after 10,000 random 4K conversions, and the
   same workload on a 1 GiB guest: RSS(1 TiB) / RSS(1 GiB) (goal <= 1.5) and RSS (goal < 200 MB).
   Each size runs in a fresh subprocess so the RSS figures are not mixed.
2. The cost of a 4K conversion round trip (to shared and back) inside an unsplit 1G folio relative
   to one in a 4K file (goal <= 50x): medians over repeated rounds.
3. A suite's memory: the peak RSS of a pytest run of 100 and of 400 tests, each a 64G guest of
   2M pages with 200 split huge pages and 400 shareability ranges, and the growth per extra test
   (goal: under 0.1 MB, i.e. a finished test keeps none of its model).

Run: python benchmarks/bench_model.py [--conversions N] [--seed S] [--suite-tests N]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale_worker(size_gib: int, conversions: int, seed: int) -> dict[str, float]:
    from pytest_gmem import Host

    base = rss_mb()
    t0 = time.perf_counter()
    host = Host(hugetlb={"1G": size_gib})
    g = host.create_vm().create_guest_memfd(size=f"{size_gib}G", mmap=True, init_private=True, page_size="1G")
    g.fallocate(1, 0, g.size)
    rng = random.Random(seed)
    pages = g.size // 4096
    shared: set[int] = set()
    for _ in range(conversions):
        p = rng.randrange(pages)
        if p in shared:
            g.convert_private(p * 4096, 4096)
            shared.discard(p)
        else:
            g.convert_shared(p * 4096, 4096)
            shared.add(p)
    elapsed = time.perf_counter() - t0
    host.check()
    return {
        "size_gib": size_gib, "seconds": elapsed, "rss_mb": rss_mb(), "rss_model_mb": rss_mb() - base,
        "ranges": len(g.ranges()), "folio_runs": g.filemap.nr_runs(),
        "split_huge_pages": sum(1 for r in g.filemap.all_runs() if r.block.split and r.start == r.block.base),
    }


def run_scale(size_gib: int, conversions: int, seed: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(size_gib), "--conversions", str(conversions), "--seed", str(seed)],
        check=True, capture_output=True, text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def conversion_cost(rounds: int, seed: int) -> tuple[float, float]:
    """Median seconds of a 4K to-shared + to-private round trip: (1G unsplit, 4K file)."""
    from pytest_gmem import Host

    host = Host(hugetlb={"1G": 2})
    big = host.create_vm().create_guest_memfd(size="1G", mmap=True, init_private=True, page_size="1G")
    big.fallocate(1, 0, big.size)
    small = host.create_vm().create_guest_memfd(size="1G", mmap=True, init_private=True)
    small.fallocate(1, 0, small.size)
    rng = random.Random(seed)
    t_big, t_small = [], []
    for _ in range(rounds):
        off = rng.randrange(big.size // 4096) * 4096
        t0 = time.perf_counter()
        big.convert_shared(off, 4096)  # splits the 1G folio
        big.convert_private(off, 4096)  # merges it back
        t1 = time.perf_counter()
        small.convert_shared(off, 4096)
        small.convert_private(off, 4096)
        t2 = time.perf_counter()
        t_big.append(t1 - t0)
        t_small.append(t2 - t1)
    assert big.filemap.nr_runs() == 1, "the 1G folio should be whole again after each round"
    return statistics.median(t_big), statistics.median(t_small)


SUITE = """
import pytest

@pytest.mark.parametrize("i", range(int(__import__("os").environ["SUITE_TESTS"])))
@pytest.mark.gmem(size="64G", page_size="2M", init_private=True)
def test_many_ranges(gmem, i):
    for k in range(200):  # 200 split 2M folios, 400 shareability ranges
        off = (k * 7 + i) % 30000 << 21
        gmem.guest_write(off, b"x")
        gmem.convert_shared(off, "4K")
"""


def suite_rss(tests: int) -> float:
    """Peak RSS (MB) of ``pytest`` running ``tests`` such tests, in a fresh directory."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gmem-bench-suite-") as tmp:
        with open(os.path.join(tmp, "test_suite.py"), "w", encoding="utf-8") as fh:
            fh.write(SUITE)
        env = {**os.environ, "SUITE_TESTS": str(tests), "PYTHONDONTWRITEBYTECODE": "1"}
        code = ("import resource, sys, pytest; status = pytest.main(sys.argv[1:]); "
                "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(status)")
        out = subprocess.run([sys.executable, "-c", code, "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                              "test_suite.py"], cwd=tmp, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"the suite run failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        peak = next(line for line in out.stdout.splitlines() if line.startswith("PEAK"))
        return int(peak.split()[1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conversions", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--suite-tests", type=int, default=400, help="figure 3: the longer suite (the other: a quarter)")
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(scale_worker(args.worker, args.conversions, args.seed)))
        return
    print(f"== scale: {args.conversions} random 4K conversions on a 1G-page guest (fresh process each)")
    small = run_scale(1, args.conversions, args.seed)
    big = run_scale(1024, args.conversions, args.seed)
    for r in (small, big):
        print(f"  {r['size_gib']:>5} GiB: {r['seconds']:.2f} s, RSS {r['rss_mb']:.1f} MB "
              f"(model {r['rss_model_mb']:.1f} MB), {r['ranges']} shareability ranges, "
              f"{r['folio_runs']} folio runs, {r['split_huge_pages']} split 1G pages")
    ratio = big["rss_mb"] / small["rss_mb"]
    print(f"  RSS(1 TiB) = {big['rss_mb']:.1f} MB (goal < 200 MB): {'OK' if big['rss_mb'] < 200 else 'MISSED'}")
    print(f"  RSS(1 TiB) / RSS(1 GiB) = {ratio:.2f} (goal <= 1.5): {'OK' if ratio <= 1.5 else 'MISSED'}")
    print(f"== cost of a 4K conversion round trip, median of {args.rounds}")
    t_big, t_small = conversion_cost(args.rounds, args.seed)
    rel = t_big / t_small
    print(f"  inside an unsplit 1G folio: {t_big * 1e6:.1f} us; in a 4K file: {t_small * 1e6:.1f} us")
    print(f"  ratio = {rel:.1f}x (goal <= 50x): {'OK' if rel <= 50 else 'MISSED'}")
    long = args.suite_tests
    short = max(1, long // 4)
    print(f"== a suite's memory: peak RSS of pytest running {short} and {long} tests of a 64G guest, 400 ranges each")
    small_rss, big_rss = suite_rss(short), suite_rss(long)
    per_test = (big_rss - small_rss) / (long - short) if long > short else 0.0
    print(f"  {short} tests: {small_rss:.1f} MB; {long} tests: {big_rss:.1f} MB")
    print(f"  growth per test = {per_test * 1024:.0f} KB (goal < 100 KB): {'OK' if per_test < 0.1 else 'MISSED'}")


if __name__ == "__main__":
    main()
