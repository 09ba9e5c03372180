"""Fault sweeps: one scenario per reachable (point, kind, nth), found by a census run.

Pytest-free. The technique is the kernel's fail-nth and syzkaller's fault-injection job: run
the code once with nothing armed and count every fault point's hits (the *census*); then run it
once per hit ``k`` of each point, with only that hit failing, and classify what happened. With
``depth=2`` each scenario whose first fault made the code roll back is extended with a second
fault on the k-th hit of the rollback phase (``when={"phase": "rollback"}``).

Modules, one concern each: ``spec`` (the marker's arguments, scenarios, the plan), ``census``
(the census and its disk cache), ``sources`` (the import-graph digests of a census key),
``outcome`` (classification, one item's state), ``runner`` (the pytest-free runners),
``tally`` (the per-revision table). Every public name is importable from this package.

Users:

* the pytest plugin (``@pytest.mark.fault_sweep``, ``--gmem-sweep``, ``--gmem-compare``) turns
  every :class:`Scenario` into its own test item (see docs/sweeps.md) and classifies it with
  :func:`classify`;
* batched sweep items (``--gmem-sweep-batch``) run their scenarios through
  :func:`run_resumed`, each from a copy of the state the item's fixtures set up;
* :func:`run_sweep` sweeps a ``setup`` + ``op`` pair directly, without pytest, resuming every
  scenario from a deep copy of the state ``setup`` built (``benchmarks/bench_sweep.py``).

Outcomes (:data:`OUTCOMES`), in the order :func:`classify` checks them:
``kernel-bug`` (KernelBug raised), ``invariant`` (``host.check()`` failed), ``warn`` (a WARN not
allowed), ``failed`` (the test's own assertions failed, in its body or in a fixture's setup or
teardown), ``skipped`` (the body called ``pytest.skip`` or ``pytest.xfail``), ``not-fired`` (the
fault never fired), ``clean`` (it fired and an error reached the caller, all checks passed),
``success`` (it fired, the operation succeeded anyway, all checks passed).
"""

from __future__ import annotations

from .census import CENSUS_CACHE_LIMIT, BodyCensus, Census, CensusCache, census_key, seeded_key
from .outcome import ErrorWatch, ItemState, classify, is_kernel_bug
from .runner import Result, Resume, ResumedRun, run_resumed, run_scenario, run_sweep
from .sources import conftest_paths, files_digest, import_closure, source_digest
from .spec import (
    COMPARE_HELP,
    MARKER_HELP,
    OUTCOMES,
    PASSING,
    ROLLBACK,
    SWEEP_DEPTH_HELP,
    Scenario,
    SweepError,
    SweepFault,
    SweepSpec,
    kind_args,
    kind_label,
    parse_kind,
    plan,
    sweep_spec,
)
from .tally import tally

__all__ = [
    "CENSUS_CACHE_LIMIT", "COMPARE_HELP", "MARKER_HELP", "OUTCOMES", "PASSING", "ROLLBACK", "SWEEP_DEPTH_HELP",
    "BodyCensus", "Census", "CensusCache", "ErrorWatch", "ItemState", "Result", "Resume", "ResumedRun",
    "Scenario", "SweepError", "SweepFault", "SweepSpec", "census_key", "classify", "conftest_paths",
    "files_digest", "import_closure", "is_kernel_bug", "kind_args", "kind_label", "parse_kind", "plan",
    "run_resumed", "run_scenario", "run_sweep", "seeded_key", "source_digest", "sweep_spec", "tally",
]
