"""Cost of the fuzz tests under the Hypothesis profiles of tests/conftest.py.

    python benchmarks/bench_fuzz.py [--profile ci|dev] [-n 2]

Runs the fuzz tests (the grammar's property tests and the marker / settings fuzzing) the way
CI does (``CI=true`` selects the ``ci`` profile) in a pytest subprocess, and prints: the wall
time, the CPU time of the run (user + system, every process of it: ``-n 2`` workers included),
the number of test cases Hypothesis ran per fuzz test (``--hypothesis-show-statistics``) and
their total. On a loaded machine the wall time grows and the CPU time does not: the CPU time
divided by the cores is the wall time the run needs on an idle machine with that many cores.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZ_FILES = ["tests/faults/test_faults_grammar_props.py", "tests/faults/test_fuzz_inputs.py"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=("ci", "dev"), default="ci")
    p.add_argument("-n", dest="workers", default="2", help="pytest-xdist workers (0: none); default 2")
    args = p.parse_args()
    env = dict(os.environ, CI="true" if args.profile == "ci" else "false")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
           "--hypothesis-show-statistics", *FUZZ_FILES]
    if args.workers != "0":
        cmd += ["-n", args.workers]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = done.stdout
    counts = {}
    for m in re.finditer(r"^(\S+::\S+):\n(?:(?!^\S+::).*\n)*?\s+- (\d+) passing", out, re.MULTILINE):
        counts[m.group(1)] = counts.get(m.group(1), 0) + int(m.group(2))
    print(f"profile {args.profile}, -n {args.workers}: exit status {done.returncode}, "
          f"{out.strip().splitlines()[-1] if out.strip() else ''}")
    for name, n in counts.items():
        print(f"  {n:6d}  {name.split('/')[-1]}")
    print(f"  {sum(counts.values()):6d}  test cases in {len(counts)} fuzz tests")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s (user + system); on {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
