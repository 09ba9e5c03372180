"""Runs pytest_gmem.hypothesis.GmemMachine: 10,000 steps on each clean revision, and one search
per known RFC v2 defect (the machine's ``target``: only that defect fails, so Hypothesis shrinks
each one on its own), in two processes.

Prints, per clean revision (fixed, prealloc, upstream): steps, faults armed and fired, expected
errors, tolerated WARNs (docs/hypothesis.md says which), invariant violations and unexpected
exceptions (both must be 0); per defect: found or not, the runs it took, the length of the
shrunk program (rule calls) and the program itself. Exits 1 when a target is not met.

Run: python benchmarks/state_machine.py [--steps N] [--shrink-seconds S] [--seed S] [--jobs J]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from dataclasses import dataclass, field
from typing import Any

CLEAN = ("fixed", "prealloc", "upstream")
STEP_COUNT = 50  # steps per Hypothesis example


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    steps: int = 0
    runs: int = 0
    armed: int = 0
    fired: int = 0
    errors: int = 0
    tolerated: dict[str, int] = field(default_factory=dict)
    violations: int = 0
    unexpected: int = 0
    found: bool = False
    program: list[str] = field(default_factory=list)
    problem: str = ""


def _program(err: BaseException) -> list[str]:
    notes = list(getattr(err, "__notes__", []))
    start = next((i for i, line in enumerate(notes) if line.startswith("state = ")), None)
    if start is None:
        return []
    return [line for line in notes[start:] if not line.startswith(("Explanation:", "    "))]


def rule_calls(program: list[str]) -> int:
    """The length of a printed program: its rule calls (not the class line, the seed comment or
    the teardown)."""
    return sum(1 for line in program if ("state." in line and line != "state.teardown()"
                                         and not line.startswith("state = ")))


def _failures(err: BaseException) -> list[BaseException]:
    subs = getattr(err, "exceptions", None)  # an ExceptionGroup: Hypothesis found several bugs
    if isinstance(subs, tuple):
        return [e for sub in subs for e in _failures(sub)]
    return [err]


def _settings(examples: int, shrink: bool) -> Any:
    from hypothesis import HealthCheck, Phase, settings

    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]
    return settings(max_examples=examples, stateful_step_count=STEP_COUNT, database=None, deadline=None,
                    phases=phases, suppress_health_check=list(HealthCheck))


def clean_run(revision: str, steps: int, seed: int) -> Result:
    """``steps`` steps of the machine on one revision, in as many seeded runs as it takes."""
    import hypothesis
    from hypothesis.stateful import run_state_machine_as_test

    from pytest_gmem.hypothesis import GmemFailure, GmemMachine, MachineStats

    out = Result(revision)
    stats = MachineStats()
    machine = GmemMachine.configure(revisions=(revision,), stats=stats)
    t0 = time.perf_counter()
    attempt = 0
    while stats.steps < steps:
        examples = max(10, (steps - stats.steps) // STEP_COUNT + 5)
        try:
            run_state_machine_as_test(hypothesis.seed(seed + attempt)(machine), settings=_settings(examples, True))
        except BaseException as exc:
            for e in _failures(exc):
                if isinstance(e, GmemFailure) and any(f.text.startswith("invariant:") for f in e.findings):
                    out.violations += 1
                else:
                    out.unexpected += 1
                out.program = out.program or _program(e)
                out.problem = out.problem or str(e)
            break
        attempt += 1
    out.seconds = time.perf_counter() - t0
    out.steps, out.runs = stats.steps, stats.runs
    out.armed, out.fired, out.errors = stats.faults_armed, stats.faults_fired, sum(stats.errors.values())
    out.tolerated = dict(stats.tolerated)
    return out


def defect_run(target: str, examples: int, shrink_seconds: float, seed: int) -> Result:
    """Search for one RFC v2 defect (2M pages, sw_protected VMs: where each lives) and shrink it
    within ``shrink_seconds``."""
    import hypothesis
    from hypothesis.internal.conjecture import engine
    from hypothesis.stateful import run_state_machine_as_test

    from pytest_gmem.hypothesis import GmemFailure, GmemMachine, MachineStats

    # Hypothesis stops shrinking after MAX_SHRINKING_SECONDS (300 by default) and reports the
    # smallest failing program it has: the budget per defect
    engine.MAX_SHRINKING_SECONDS = shrink_seconds  # type: ignore[misc]
    out = Result(target)
    stats = MachineStats()
    machine = GmemMachine.configure(revisions=("rfc-v2",), target=target, page_sizes=("2M",),
                                    vm_types=("sw_protected",), stats=stats)
    t0 = time.perf_counter()
    try:
        run_state_machine_as_test(hypothesis.seed(seed)(machine), settings=_settings(examples, True))
        out.problem = f"not found in {examples} examples"
    except GmemFailure as e:
        out.found = e.defects == [target]
        out.program = _program(e)
        out.problem = "" if out.found else f"found {e.defects}"
    except BaseException as exc:
        out.problem = f"{type(exc).__name__}: {exc}"
        out.program = _program(exc)
    out.seconds = time.perf_counter() - t0
    out.steps, out.runs = stats.steps, stats.runs
    return out


def _job(args: tuple[str, str, int, float, int]) -> Result:
    kind, name, n, shrink, seed = args
    if kind == "clean":
        return clean_run(name, n, seed)
    return defect_run(name, n, shrink, seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000, help="steps per clean revision (default 10000)")
    ap.add_argument("--examples", type=int, default=4000, help="examples per defect search at most (4000)")
    ap.add_argument("--shrink-seconds", type=float, default=20.0, help="shrinking budget per defect (20)")
    ap.add_argument("--seed", type=int, default=0, help="Hypothesis seed of every run (0)")
    ap.add_argument("--jobs", type=int, default=2, help="processes (2)")
    ap.add_argument("--defect", action="append", help="only these defects (default: every target)")
    ap.add_argument("--revision", action="append", help="only these clean revisions (default: all three)")
    args = ap.parse_args(argv)
    from pytest_gmem.hypothesis import DEFECTS, TARGETS

    defects = args.defect or list(TARGETS)
    revisions = args.revision or list(CLEAN)
    # the defect searches first: they take longest, the clean runs fill the gaps
    jobs = [("defect", d, args.examples, args.shrink_seconds, args.seed) for d in defects]
    jobs += [("clean", r, args.steps, 0.0, args.seed) for r in revisions]
    t0 = time.perf_counter()
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(_job, jobs, chunksize=1)
    else:
        results = [_job(j) for j in jobs]
    wall = time.perf_counter() - t0
    by_name = {r.name: r for r in results}
    bad = 0
    print(f"{'revision':9} {'steps':>7} {'runs':>5} {'armed':>6} {'fired':>6} {'errors':>7} "
          f"{'violations':>10} {'unexpected':>10} {'seconds':>8}  tolerated WARNs")
    for name in revisions:
        r = by_name[name]
        tol = ", ".join(f"{k} {v}" for k, v in sorted(r.tolerated.items())) or "none"
        print(f"{name:9} {r.steps:>7} {r.runs:>5} {r.armed:>6} {r.fired:>6} {r.errors:>7} "
              f"{r.violations:>10} {r.unexpected:>10} {r.seconds:>8.1f}  {tol}")
        if r.violations or r.unexpected or r.steps < args.steps:
            bad += 1
            print(f"    FAILED: {r.problem.splitlines()[0] if r.problem else 'fewer steps than asked'}")
            for line in r.program:
                print(f"      {line}")
    print()
    print(f"{'rfc-v2 defect':26} {'#':>2} {'found':>6} {'runs':>6} {'steps':>7} {'program':>8} {'seconds':>8}")
    for name in defects:
        r = by_name[name]
        number = DEFECTS[name].number
        print(f"{name:26} {number or '-':>2} {'yes' if r.found else 'NO':>6} {r.runs:>6} {r.steps:>7} "
              f"{rule_calls(r.program) if r.found else '-':>8} {r.seconds:>8.1f}")
        if not r.found:
            bad += 1
            print(f"    {r.problem}")
    print(f"\nwall time {wall:.1f} s with {args.jobs} process(es); seed {args.seed}")
    for name in defects:
        r = by_name[name]
        if r.found:
            print(f"\n# {name}: {DEFECTS[name].summary}")
            for line in r.program:
                print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
