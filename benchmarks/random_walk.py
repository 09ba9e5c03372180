"""A seeded random walk over the model with random faults, checking the invariants after every
operation (the walk that found issue 14: a punch hole over a split huge page).

Each step picks an operation (conversions both ways over random aligned ranges, guest writes,
punch holes, fallocate) and, with probability ``--fault-rate``, arms one random fault (any
declared HugeTLB/conversion point, a kind it allows, nth 1..3) for that operation only. After
each step it runs ``host.check()``. Prints, per revision: steps, faults armed, WARNs, invariant
violations, KernelBugs, and the first problem found (with the seed and step that reproduce it).

Run: python benchmarks/random_walk.py [--steps N] [--seeds K] [--revision R ...]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field

import faults
from pytest_gmem import GuestFault, Host, InvariantViolation, KernelBug, SigBus

MB2 = 2 << 20
PAGE = 4096
#: the points a sw_protected HugeTLB file reaches, and the kinds the walk arms at each
KINDS: dict[str, list[faults.Kind]] = {
    "__kvm_gmem_filemap_add_folio": [faults.enomem()],
    "alloc_hugetlb_folio": [faults.enomem()],
    "filemap_remove_folio_for_restructuring": [faults.speculative_refcount(hold=3), faults.extra_refcount()],
    "guestmem_hugetlb_stash_metadata": [faults.enomem()],
    "hugepage_subpool_get_pages": [faults.enomem()],
    "hugetlb_vmemmap_optimize_folio": [faults.enomem()],
    "hugetlb_vmemmap_restore_folio": [faults.enomem()],
    "kvm_gmem_convert_compute_work": [faults.enomem()],
    "kvm_gmem_has_safe_refcount": [faults.speculative_refcount(hold=3), faults.extra_refcount()],
    "kvm_gmem_shareability_store": [faults.enomem()],
}


@dataclass
class Walk:
    revision: str
    steps: int = 0
    faults: int = 0
    warns: int = 0
    violations: int = 0
    kernel_bugs: int = 0
    first: list[str] = field(default_factory=list)


def one_walk(revision: str, seed: int, steps: int, fault_rate: float, pages: int = 4) -> Walk:
    """``steps`` operations on a fresh host; stops at the first KernelBug or violation (the
    state after either is not worth walking on)."""
    with faults.scope(inherit=False, name=f"random walk {revision} seed {seed}"):
        return _walk(revision, seed, steps, fault_rate, pages)


def _walk(revision: str, seed: int, steps: int, fault_rate: float, pages: int) -> Walk:
    rng = random.Random(seed)
    out = Walk(revision)
    host = Host(revision=revision, hugetlb={"2M": pages + 2})
    g = host.create_vm(vm_type="sw_protected").create_guest_memfd(
        pages * MB2, mmap=True, init_private=True, page_size="2M")
    size = pages * MB2
    for step in range(steps):
        out.steps += 1
        op = rng.choice(("shared", "private", "write", "punch", "fallocate", "shared", "private"))
        huge = rng.random() < 0.3
        unit = MB2 if huge else PAGE
        off = rng.randrange(0, size // unit) * unit
        length = min(rng.randint(1, 4) * unit, size - off)
        what = f"{op}({off:#x}, {length:#x})"
        point = None
        if rng.random() < fault_rate:
            point = rng.choice(sorted(KINDS))
            kind = rng.choice(KINDS[point])
            nth = rng.randint(1, 3)
            what += f" under {point}:{kind}#{nth}"
        warns_before = len(host.warnings)
        try:
            if point is None:
                run(g, op, off, length)
            else:
                out.faults += 1
                with faults.inject(point, kind, nth=nth):
                    run(g, op, off, length)
        except KernelBug as e:
            out.kernel_bugs += 1
            out.first.append(f"seed {seed} step {step}: {what}: KernelBug {e.function}")
            return out
        except (OSError, GuestFault, SigBus):
            pass
        new = host.warnings[warns_before:]
        out.warns += len(new)
        try:
            host.check()
        except InvariantViolation as e:
            out.violations += 1
            out.first.append(f"seed {seed} step {step}: {what}: {str(e).splitlines()[1].strip()}")
            return out
        if new and not out.first:
            out.first.append(f"seed {seed} step {step}: {what}: WARN {new[0].where}")
        host.flush_work()
    return out


def run(g, op: str, off: int, length: int) -> None:  # type: ignore[no-untyped-def]
    if op == "shared":
        g.convert_shared(off, length)
    elif op == "private":
        g.convert_private(off, length)
    elif op == "write":
        g.guest_write(off, b"walk")
    elif op == "punch":
        g.punch_hole(off, length)
    else:
        g.fallocate(1, off, length)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000, help="operations per walk (default 5000)")
    ap.add_argument("--seeds", type=int, default=20, help="walks per revision (default 20)")
    ap.add_argument("--fault-rate", type=float, default=0.3, help="share of steps with a fault (0.3)")
    ap.add_argument("--revision", action="append", help="revision(s) to walk (default: all three)")
    args = ap.parse_args(argv)
    revisions = args.revision or ["rfc-v2", "fixed", "prealloc"]
    print(f"{'revision':10} {'walks':>6} {'steps':>8} {'faults':>7} {'WARNs':>6} {'broken':>7} "
          f"{'KernelBug':>9} {'clean walks':>11}  seconds")
    bad = 0
    for rev in revisions:
        t0 = time.perf_counter()
        walks = [one_walk(rev, seed, args.steps, args.fault_rate) for seed in range(args.seeds)]
        dt = time.perf_counter() - t0
        clean = sum(1 for w in walks if not (w.warns or w.violations or w.kernel_bugs))
        print(f"{rev:10} {len(walks):>6} {sum(w.steps for w in walks):>8} {sum(w.faults for w in walks):>7} "
              f"{sum(w.warns for w in walks):>6} {sum(w.violations for w in walks):>7} "
              f"{sum(w.kernel_bugs for w in walks):>9} {clean:>11}  {dt:.1f}")
        firsts = [f for w in walks for f in w.first]
        for text in firsts[:3]:
            print(f"    {text}")
        if rev != "rfc-v2":
            bad += sum(w.violations + w.kernel_bugs for w in walks)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
