"""What a fault point costs: ``python benchmarks/bench_faults.py [--quick]``.

Prints, from one run (timeit, interleaved repeats, medians):

* an idle hit, ``P.hit(index=i, phase="forward")`` with nothing armed anywhere, against an
  empty Python function called with the same keyword arguments, and their ratio (goal <= 1.5x);
* a hit while some *other* point is armed (every hit takes the slow path then);
* ``hit_many(262144)`` (a 1G folio's 4K pages in one call) with an ``nth`` arming.

Interleaving the statements inside each repeat keeps a busy machine's drift out of the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faults

P = faults.declare("bench_faults_p", {"ENOMEM"}, "the point being hit")
Q = faults.declare("bench_faults_q", {"ENOMEM"}, "some other point")
PAGES = 262144


def empty(**context: object) -> None:
    """The baseline: a Python function with the same signature as ``FaultPoint.hit``."""
    return None


def measure(stmts: dict[str, str], number: int, repeats: int) -> dict[str, list[float]]:
    """ns per execution of each statement, one list of repeats per statement."""
    env = {"P": P, "Q": Q, "empty": empty, "faults": faults, "i": 12345, "PAGES": PAGES}
    timers = {name: timeit.Timer(stmt, globals=env) for name, stmt in stmts.items()}
    out: dict[str, list[float]] = {name: [] for name in stmts}
    for _ in range(repeats):
        for name, t in timers.items():
            out[name].append(t.timeit(number) / number * 1e9)
    return out


def in_scope(fn: Callable[[], dict[str, list[float]]], *arm: tuple[str, dict[str, object]]
             ) -> dict[str, list[float]]:
    with faults.scope(inherit=False):
        for point, kwargs in arm:
            faults.inject(point, "ENOMEM", **kwargs)  # type: ignore[arg-type]
        return fn()


def row(label: str, ns: float, note: str = "") -> None:
    value = f"{ns:10.1f} ns" if ns < 1e5 else f"{ns / 1e6:10.3f} ms"
    print(f"  {label:<58}{value}  {note}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = ap.parse_args()
    repeats, number = (5, 50_000) if args.quick else (31, 200_000)
    if faults.active():
        print("something is armed or recording at start-up: the idle figures would be wrong")
        return 1
    print(f"Python {sys.version.split()[0]}; {repeats} interleaved repeats; medians\n")

    idle = measure({
        "hit": 'P.hit(index=i, phase="forward")',
        "empty": 'empty(index=i, phase="forward")',
        "pass": "pass",
    }, number, repeats)
    med = {k: statistics.median(v) for k, v in idle.items()}
    ratios = [h / e for h, e in zip(idle["hit"], idle["empty"], strict=True)]
    net = [(h - p) / (e - p) for h, e, p in zip(idle["hit"], idle["empty"], idle["pass"], strict=True)]
    print("idle (nothing armed anywhere)")
    row("P.hit(index=i, phase='forward')", med["hit"])
    row("empty(index=i, phase='forward')  [def empty(**context)]", med["empty"])
    ratio = statistics.median(ratios)
    verdict = "ok" if ratio <= 1.5 else "MISSES the 1.5x goal"
    print(f"  ratio hit / empty function: {ratio:.2f}x ({verdict}); "
          f"without the timing loop's own {med['pass']:.1f} ns: {statistics.median(net):.2f}x\n")

    print("slow path")
    slow = in_scope(lambda: measure({"hit": 'P.hit(index=i, phase="forward")'}, number, repeats),
                    ("bench_faults_q", {"times": None}))
    row("P.hit(...) while another point is armed", statistics.median(slow["hit"]))
    own = in_scope(lambda: measure({"hit": 'P.hit(index=i, phase="forward")'}, number, repeats),
                   ("bench_faults_p", {"nth": 10**15}))
    row("P.hit(...) with P armed (nth far away: counts, never fires)", statistics.median(own["hit"]))
    with faults.scope(inherit=False, record=True) as rec:
        traced = measure({"hit": 'P.hit(index=i, phase="forward")'}, number, repeats)
    row("P.hit(...) in a recording scope (census + trace)", statistics.median(traced["hit"]),
        f"({len(rec.trace)} trace events kept)")

    print(f"\nbatch: hit_many({PAGES}) in one call")
    n_batch = max(1, number // 2000)
    batch = measure({
        "nth": "with faults.inject('bench_faults_p', 'ENOMEM', nth=200000):\n"
               "    f = P.hit_many(PAGES, index=0)\n    assert f is not None and f.offset == 199999",
        "idx": "with faults.inject('bench_faults_p', 'ENOMEM', when={'index': 250000}):\n"
               "    assert P.hit_many(PAGES, index=0).offset == 250000",
        "arm": "with faults.inject('bench_faults_p', 'ENOMEM', nth=200000): pass",
    }, n_batch, repeats)
    bmed = {k: statistics.median(v) for k, v in batch.items()}
    row(f"arm nth=200000 + hit_many({PAGES}) (fires at item 199999)", bmed["nth"],
        f"= {bmed['nth'] / PAGES:.3f} ns per page")
    row(f"arm when={{'index': 250000}} + hit_many({PAGES})", bmed["idx"])
    row("  of which arming and disarming", bmed["arm"])
    prob = measure({"p": "with faults.inject('bench_faults_p', 'ENOMEM', probability=0.0):\n"
                         "    P.hit_many(PAGES, index=0)"}, 1, 3 if args.quick else 7)
    row(f"hit_many({PAGES}) with a probability arming (item by item)",
        statistics.median(prob["p"]), f"= {statistics.median(prob['p']) / PAGES:.0f} ns per page")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
