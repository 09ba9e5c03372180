"""``--gmem-verify-determinism``: run each test twice and fail it when the two runs differ.

FoundationDB's "unseed" check, for a pytest suite: with the same seed, a test must reach the
same fault points in the same order with the same contexts, fire the same faults and find the
same problems. Something else steering the test (the wall clock, an unseeded random module,
the order of a set of objects, state left by an earlier test) shows up as a difference, named
at the first line where the two runs part. Both runs are full pytest runs of the item (setup,
body, teardown; the first one tears down every fixture, so nothing is shared between them);
only the second is reported.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from ._keys import PHASES, RUN

#: How many lines of each run the failure shows around the first difference.
CONTEXT_LINES = 3


def digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def difference_text(nodeid: str, first: list[str], second: list[str]) -> str:
    """The failure text: both digests and the first line where the runs part."""
    at = next((i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b), min(len(first), len(second)))
    lines = [f"gmem: {nodeid} is not deterministic (--gmem-verify-determinism): two runs with the same seed "
             f"differ (trace digests {digest(first)} and {digest(second)}), first at event {at + 1}:"]
    lo = max(0, at - CONTEXT_LINES)
    for name, run in (("first run", first), ("second run", second)):
        lines.append(f"  {name} ({len(run)} events):")
        lines += [f"    {'>' if i == at else ' '} {run[i]}" for i in range(lo, min(len(run), at + CONTEXT_LINES + 1))]
        if at >= len(run):
            lines.append("    > (ends here)")
    lines.append("Something besides the seed steers the test: the clock, an unseeded random, a set's order, "
                 "or state an earlier run left.")
    return "\n".join(lines)


class DeterminismCheck:
    """Registered with ``--gmem-verify-determinism``: owns the run protocol of every item."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        runtestprotocol(item, log=False, nextitem=None)  # the first run tears everything down
        first = self._lines(item)
        _reset(item)
        reports = runtestprotocol(item, log=False, nextitem=nextitem)
        second = self._lines(item)
        if LINES in item.stash:  # items live as long as the session
            del item.stash[LINES]
        if first is not None and second is not None and first != second:
            _fail_call_report(reports, difference_text(item.nodeid, first, second))
        for report in reports:
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        # trylast: inside the core's wrapper, which lets go of the run once its record is built
        report = yield
        run = item.stash.get(RUN, None)
        if report.when == "teardown" and run is not None:
            item.stash[LINES] = run.trace_lines()
        return report

    @staticmethod
    def _lines(item: pytest.Item) -> list[str] | None:
        return item.stash.get(LINES, None)


#: What a run did, as the check compares it, taken at its teardown report.
LINES = pytest.StashKey[list[str]]()


def _reset(item: pytest.Item) -> None:
    """Make the item runnable again (what pytest-rerunfailures does between reruns)."""
    if RUN in item.stash:
        del item.stash[RUN]
    if LINES in item.stash:
        del item.stash[LINES]
    if PHASES in item.stash:
        del item.stash[PHASES]
    sections = getattr(item, "_report_sections", None)
    if isinstance(sections, list):
        sections.clear()  # the first run's captured output and gmem sections
    init = getattr(item, "_initrequest", None)
    if callable(init):
        init()


def _fail_call_report(reports: list[Any], text: str) -> None:
    """Turn the second run's call report (its setup report if the call never ran) into a failure."""
    target = next((r for r in reports if r.when == "call"), None) or reports[0]
    if target.failed:
        target.sections.append(("gmem determinism", text))
        return
    target.outcome = "failed"
    target.longrepr = text
    if hasattr(target, "wasxfail"):
        del target.wasxfail
