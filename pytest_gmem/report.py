"""What the plugin shows: the per-test record, its report section, the failure text of the
after-test check, the terminal summary table and the JSON report.

Pytest-free. A test's record is a dict of builtins (it rides on the test report across the
pytest-xdist boundary); everything else is built from records, so the summary is the same on
the controller of ``pytest -n 2`` as in a single process.
"""

from __future__ import annotations

import json
import shlex
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import faults

from .compare import sweep_records
from .compare import to_json as sweep_json
from .testrun import Problem, TestRun

TRACE_LINES = 40


# --- the per-test record --------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def reproduce_command(nodeid: str, seed: int, revision: str | None, fault_texts: Sequence[str]) -> str:
    """The one line that reruns the test with the same seed and command-line faults (the
    test's own markers and fixture armings come back with it)."""
    parts = ["pytest", shlex.quote(nodeid), f"--gmem-seed={seed}"]
    if revision:
        parts.append(f"--gmem-revision={revision}")
    for text in fault_texts:
        parts += ["--gmem-fault", shlex.quote(text)]
    return " ".join(parts)


def build_record(run: TestRun, session_seed: int, revision: str | None, fault_texts: Sequence[str]) -> dict[str, Any]:
    """The test's faults as builtins: armed, fired, never fired, points reached."""
    sc = run.scope
    unfired = sc.unfired()
    armed = [
        {
            "arming": run.arming_text(a),
            "source": a.source or "",
            "hits": a.hits,
            "fired": a.fired,
            "seed": a.seed,
        }
        for a in sc.history
    ]
    fired = [
        {
            "label": f.label(),
            "point": f.point,
            "kind": f.kind.label(),
            "nth": f.nth,
            "context": _plain(f.context),
        }
        for f in sc.fired
    ]
    return {
        "nodeid": run.nodeid,
        "seed": run.seed,
        "used_model": run.used_model,
        "armed": armed,
        "fired": fired,
        "unfired": [run.arming_text(a) for a in unfired],
        "unfired_why": [faults.why_unfired(a, sc) for a in unfired],
        "reached": dict(sorted(sc.census.items())),
        "problems": [{"kind": p.kind, "text": p.text} for p in run.problems],
        "reproduce": reproduce_command(run.nodeid, session_seed, revision, fault_texts),
        "outcome": None,
    }


def interesting(record: Mapping[str, Any]) -> bool:
    """A record worth a report section and a place in the summary."""
    return bool(record["used_model"] or record["armed"] or record["reached"])


def section_text(record: Mapping[str, Any]) -> str:
    """The "gmem faults" report section of one test."""
    lines = [f"test seed: {record['seed']} (from the session seed and the node id)"]
    if record["armed"]:
        lines.append("armed:")
        for a in record["armed"]:
            where = f"  [{a['source']}]" if a["source"] else ""
            lines.append(f"  {a['arming']}{where}  hits={a['hits']} fired={a['fired']}")
    else:
        lines.append("armed: nothing")
    if record["fired"]:
        lines.append("fired:")
        lines += [f"  {f['label']}  {f['kind']}  {_ctx(f['context'])}" for f in record["fired"]]
    else:
        lines.append("fired: nothing")
    if record["unfired"]:
        lines.append("never fired:")
        for text, why in zip(record["unfired"], record["unfired_why"], strict=True):
            lines += _unfired_lines(text, why)
    if record["reached"]:
        lines.append("points reached: " + ", ".join(f"{p} x{n}" for p, n in record["reached"].items()))
    lines.append(f"reproduce: {record['reproduce']}")
    return "\n".join(lines)


def _unfired_lines(arming: str, why: Sequence[str], width: int = 100) -> list[str]:
    """An arming that never fired, and why (each reason wrapped under it)."""
    return [f"  {arming}", *(textwrap.fill(w, width, initial_indent="    ", subsequent_indent="      ",
                                           break_long_words=False, break_on_hyphens=False) for w in why)]


def strict_failure(run: TestRun) -> str | None:
    """``--gmem-strict-faults``: the failure text when faults armed by the test (its markers,
    the faults fixture) never fired; faults armed for the whole run are exempt."""
    unfired = [a for a in run.scope.unfired() if not (a.source or "").startswith(SESSION_SOURCES)]
    if not unfired:
        return None
    lines = [f"gmem: {len(unfired)} fault(s) armed by {run.nodeid} never fired (--gmem-strict-faults):"]
    for a in unfired:
        where = f"  [{a.source}]" if a.source else ""
        lines += _unfired_lines(f"{run.arming_text(a)}{where}", faults.why_unfired(a, run.scope))
    return "\n".join(lines)


def _ctx(context: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in context.items())


# --- the after-test check ---------------------------------------------------------------------
def format_trace(scope: faults.Scope, limit: int = TRACE_LINES) -> str:
    """The last ``limit`` hits of the test, fired ones marked."""
    events = list(scope.trace)
    if not events:
        return "  (no fault point was reached)"
    lines = []
    if len(events) > limit:
        lines.append(f"  ... {len(events) - limit + scope.trace_dropped} earlier hits not shown")
    for ev in events[-limit:]:
        hits = f"#{ev.nth}" if ev.count == 1 else f"#{ev.nth}-{ev.nth + ev.count - 1}"
        line = f"  {ev.point}{hits} {_ctx(ev.context)}".rstrip()
        if ev.fired:
            line += f"  -> FIRED {ev.fired}"
        lines.append(line)
    return "\n".join(lines)


def describe_state(hosts: Sequence[Any], files: Sequence[Any]) -> str:
    """The state map of every host (``host.state_map()``), or the files' ranges and folios."""
    parts = []
    for i, host in enumerate(hosts):
        state_map = getattr(host, "state_map", None)
        if callable(state_map):
            try:
                parts.append(f"host {i}:\n{state_map()}")
                continue
            except Exception as exc:
                parts.append(f"host {i}: state_map() raised {type(exc).__name__}: {exc}")
    if len(parts) < len(hosts) or not hosts:
        for i, gmem in enumerate(files):
            try:
                ranges = gmem.ranges()
                folios = list(gmem.folios())
            except Exception as exc:
                parts.append(f"gmem {i}: unreadable ({type(exc).__name__}: {exc})")
                continue
            shown = ", ".join(f"{o:#x}+{n}p ref={r}" for o, n, r in folios[:16])
            more = f" ... ({len(folios)} folios)" if len(folios) > 16 else ""
            parts.append(f"gmem {i}: ranges {ranges}\n  folios {shown}{more}")
    return "\n".join(parts) or "(no model objects)"


def problems_text(nodeid: str, problems: Sequence[Problem], state: str, trace: str, reproduce: str) -> str:
    invariants = [p for p in problems if p.kind == "invariant"]
    warns = [p for p in problems if p.kind == "warn"]
    head = []
    if invariants:
        head.append(f"gmem: {len(invariants)} broken invariant(s) after {nodeid}:")
        head += [f"  {p.text}" for p in invariants]
    if warns:
        head.append(f"gmem: unexpected kernel WARN after {nodeid} (allow with @pytest.mark.allow_warn(pattern)):")
        head += [f"  {p.text}" for p in warns]
    return "\n".join([*head, "", "state map:", state, "", "fault trace:", trace, "", f"reproduce: {reproduce}"])


# --- outcome of a test from its phases --------------------------------------------------------
def combine_outcome(phases: Mapping[str, tuple[str, bool]]) -> str:
    """One word for a test from its (outcome, was_xfail) per phase: passed, failed, error,
    skipped, xfailed, xpassed."""
    setup = phases.get("setup", ("passed", False))
    if setup[0] == "failed":
        return "error"
    if setup[0] == "skipped":
        return "skipped"
    call = phases.get("call", ("passed", False))
    if call[1]:
        word = "xfailed" if call[0] == "skipped" else "xpassed"
    else:
        word = call[0]
    if phases.get("teardown", ("passed", False))[0] == "failed" and word != "failed":
        return "error"
    return word


# --- the session summary ----------------------------------------------------------------------
SESSION_SOURCES = ("--gmem-fault", "GMEM_FAULTS", "ini gmem_faults")
OUTCOMES = ("passed", "failed", "error", "xfailed", "xpassed", "skipped")


class Summary:
    """Records of the session's tests, gathered in the controller."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        self.records[str(record["nodeid"])] = dict(record)

    def points(self) -> dict[str, dict[str, Any]]:
        """Per point: the tests that reached it, the tests it fired in, and their outcomes."""
        table: dict[str, dict[str, Any]] = {}
        for nodeid, rec in self.records.items():
            fired_points = {f["point"] for f in rec["fired"]}
            for point in sorted(set(rec["reached"]) | fired_points):
                row = table.setdefault(
                    point, {"reached": [], "fired": [], "hits": 0, "outcomes": dict.fromkeys(OUTCOMES, 0)}
                )
                row["reached"].append(nodeid)
                row["hits"] += int(rec["reached"].get(point, 0))
                if point in fired_points:
                    row["fired"].append(nodeid)
                    outcome = rec.get("outcome") or "passed"
                    row["outcomes"][outcome] = row["outcomes"].get(outcome, 0) + 1
        return dict(sorted(table.items()))

    def table_lines(self) -> list[str]:
        """The point x outcome table: tests reaching each point, tests it fired in, and how
        those tests ended."""
        table = self.points()
        if not table:
            return ["no fault point was reached"]
        cols = [o for o in OUTCOMES if any(r["outcomes"][o] for r in table.values())] or ["passed"]
        width = max(len("point"), *(len(p) for p in table))
        head = f"{'point':<{width}}  {'tests':>5}  {'hits':>7}  {'fired':>5}" + "".join(f"  {c:>7}" for c in cols)
        lines = [head, "-" * len(head)]
        for point, row in table.items():
            line = f"{point:<{width}}  {len(row['reached']):>5}  {row['hits']:>7}  {len(row['fired']):>5}"
            lines.append(line + "".join(f"  {row['outcomes'][c]:>7}" for c in cols))
        lines.append(
            "tests: tests that reached the point; fired: tests in which it fired; "
            "outcome columns count the tests it fired in"
        )
        return lines

    def unfired_lines(self) -> list[str]:
        """Armings from markers and fixtures that never fired (usually a wrong test)."""
        out = []
        for nodeid, rec in self.records.items():
            for item in rec["armed"]:
                if item["fired"] or item["source"].startswith(SESSION_SOURCES):
                    continue  # session-wide faults are expected to miss most tests
                where = f"  [{item['source']}]" if item["source"] else ""
                out.append(f"{nodeid}: {item['arming']}{where}")
        return out

    def to_json(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        points = {
            p: {
                "reached_by": sorted(r["reached"]),  # node-id order: the same whatever the process layout
                "hits": r["hits"],
                "fired_in": sorted(r["fired"]),
                "outcomes": r["outcomes"],
            }
            for p, r in self.points().items()
        }
        data = {"settings": dict(settings), "tests": self.records, "points": points}
        sweeps = sweep_records(self.records.values())
        if sweeps:  # fault sweeps: the design comparison (see compare.py)
            data["sweep"] = sweep_json(sweeps)
        return data

    def write_json(self, path: str, settings: Mapping[str, Any]) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_json(settings), fh, indent=2, sort_keys=True)
            fh.write("\n")


def format_catalog(points: Iterable[Any]) -> str:
    """``--gmem-points``: one block per fault point."""
    lines = []
    for p in points:
        lines.append(f"{p.name}  [{', '.join(sorted(p.kinds))}]")
        if p.doc:
            lines.append(f"    {p.doc}")
        if getattr(p, "reached", ""):
            lines.append(f"    Reached: {p.reached}")
    return "\n".join(lines) if lines else "no fault points declared"
