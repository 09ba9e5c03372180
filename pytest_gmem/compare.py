"""The design comparison: per revision, how the fault-sweep scenarios ended, as a terminal
table, a JSON block, a self-contained SVG and an HTML page.

Pytest-free: everything is built from the sweep records (dicts of builtins, see
``sweep.ItemState.record``) that ride on the test reports, so it is the same under xdist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .revisions import EXPECTATIONS, REVISIONS, revision_names
from .sweep import OUTCOMES, tally


@dataclass(frozen=True)
class Outcome:
    """How the comparison shows one sweep outcome (a key of ``sweep.OUTCOMES``): its column
    heading, what it means for the kernel, in the legend's words, and its fill in the pictures
    (an Okabe-Ito colour, plus a hatch for the bad outcomes so that greyscale still tells them
    apart)."""

    key: str
    heading: str
    meaning: str
    colour: str
    #: "" (solid) or a hatch: "stripes", "dots", "cross", "lines", "bars"
    hatch: str = ""
    #: whether a count of it is a finding (printed bold)
    bad: bool = False


#: The outcomes in column order: one record each, read by the table, the legend and the bars.
OUTCOME_STYLES: tuple[Outcome, ...] = (
    Outcome("clean", "clean", "the injected error reached the caller, the state restored",
            "#009E73"),
    Outcome("success", "success", "the kernel recovered: the call succeeded, state consistent",
            "#56B4E9"),
    Outcome("warn", "WARN", "a WARN fired: the kernel knew it could not undo its work",
            "#F0E442", "stripes", bad=True),
    Outcome("invariant", "invariant", "silent corruption: a guest_memfd invariant broke, no WARN",
            "#E69F00", "dots", bad=True),
    Outcome("kernel-bug", "KernelBug", "the kernel would hang or BUG (e.g. an endless rollback loop)",
            "#D55E00", "cross", bad=True),
    Outcome("not-fired", "not fired", "the fault point was never reached: nothing was tested",
            "#999999", "bars", bad=True),
    Outcome("failed", "failed", "the test's own check failed: the kernel gave a wrong result",
            "#CC79A7", "lines", bad=True),
    Outcome("skipped", "skipped", "the test skipped itself: says nothing either way",
            "#DDDDDD"),
)
_BY_KEY = {o.key: o for o in OUTCOME_STYLES}
#: Column order and headings of the comparison (the outcomes of ``sweep.OUTCOMES``).
COLUMNS: tuple[tuple[str, str], ...] = tuple((o.key, o.heading) for o in OUTCOME_STYLES)
#: Fill colours of the picture, per outcome.
COLOURS = {o.key: o.colour for o in OUTCOME_STYLES}


def outcome_style(key: str) -> Outcome:
    """The record of outcome ``key``; one made up (grey, hatched) for an outcome this module does
    not know yet, so that a new outcome is still drawn and explained."""
    return _BY_KEY.get(key) or Outcome(key, key, f"outcome {key!r} (no description yet)", "#777777", "lines", True)


def outcomes_shown(rs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Outcome]:
    """The outcomes the pictures draw: every known one, then any other the rows counted."""
    extra = sorted({k for _, r in rs for k in r["outcomes"]} - set(_BY_KEY))
    return [*OUTCOME_STYLES, *(outcome_style(k) for k in extra)]


#: The columns the table always shows; the other outcomes only when a row counted one.
ALWAYS_SHOWN = ("clean", "success", "warn", "invariant", "kernel-bug")


def columns_shown(rs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Outcome]:
    """The table's outcome columns (terminal and pictures alike): those of :data:`ALWAYS_SHOWN`
    and every other outcome some row counted (the legend lists them all)."""
    return [o for o in outcomes_shown(rs) if o.key in ALWAYS_SHOWN or any(r["outcomes"].get(o.key) for _, r in rs)]


def row_label(rec: Mapping[str, Any]) -> str:
    """A scenario's row in the table: ``"rfc-v2"`` or ``"rfc-v2 depth 2"``."""
    depth = int(rec.get("depth") or 1)
    return f"{rec.get('revision')}" + (f" depth {depth}" if depth != 1 else "")


def empty_note(row: Mapping[str, Any]) -> str:
    """Why a row has no scenario, shown in its place ("" when it has some): at depth 2 a
    revision without a rollback phase (``Revision.has_rollback``) has no second fault to inject."""
    if row["scenarios"]:
        return ""
    depth = int(row["depth"])
    rev = REVISIONS.get(str(row["revision"]))
    if depth >= 2 and rev is not None and not rev.has_rollback:
        return f"no rollback phase: nothing to inject at depth {depth}"
    if depth >= 2:
        return f"no scenario: no rollback was reached, nothing to inject at depth {depth}"
    return "no scenario ran"


REVISION_ORDER = revision_names()


def sweep_records(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The sweep part of the tests' records; only the compared ones when there are any."""
    out = [dict(r["sweep"]) for r in records if isinstance(r.get("sweep"), Mapping)]
    compared = [r for r in out if r.get("compared")]
    return compared or out


def _row_order(key: str, row: Mapping[str, Any]) -> tuple[int, int, str]:
    rev = str(row["revision"])
    pos = REVISION_ORDER.index(rev) if rev in REVISION_ORDER else len(REVISION_ORDER)
    return (int(row["depth"]), pos, key)


def rows(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``(label, row)`` per revision and depth, depth 1 first, revisions in design order."""
    table = tally(records)
    if any(r["depth"] == 2 for r in table.values()):  # a revision without rollback phase: 0 scenarios
        for r in list(table.values()):
            label = f"{r['revision']} depth 2"
            if r["depth"] == 1 and label not in table:
                table[label] = {"revision": r["revision"], "depth": 2, "scenarios": 0,
                                "outcomes": dict.fromkeys(OUTCOMES, 0)}
    return sorted(table.items(), key=lambda kv: _row_order(*kv))


def table_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The comparison as text: one line per revision (and depth), one column per outcome."""
    rs = rows(records)
    if not rs:
        return ["no sweep scenario ran"]
    cols = [(o.key, o.heading) for o in columns_shown(rs)]
    width = max(len("revision"), *(len(label) for label, _ in rs))
    head = f"{'revision':<{width}}  {'scenarios':>9}" + "".join(f"  {h:>9}" for _, h in cols)
    lines = [head, "-" * len(head)]
    for label, r in rs:
        note = empty_note(r)
        counts = f"  {note}" if note else "".join(f"  {r['outcomes'].get(k, 0):>9}" for k, _ in cols)
        lines.append(f"{label:<{width}}  {r['scenarios']:>9}{counts}")
    return lines


def example_records(records: Sequence[Mapping[str, Any]], per_cell: int = 1) -> list[Mapping[str, Any]]:
    """The first ``per_cell`` scenarios (by node id) of each (revision, depth, bad outcome), in
    the table's order (rows, then columns)."""
    seen: dict[tuple[str, int, str], int] = {}
    out = []
    for rec in sorted(records, key=lambda rec: str(rec.get("nodeid"))):  # the same under -n
        outcome = str(rec.get("outcome"))
        if outcome in ("clean", "success", "skipped"):
            continue
        key = (str(rec.get("revision")), int(rec.get("depth") or 1), outcome)
        if seen.get(key, 0) >= per_cell:
            continue
        seen[key] = seen.get(key, 0) + 1
        out.append(rec)
    order = {k: i for i, (k, _) in enumerate(COLUMNS)}

    def place(rec: Mapping[str, Any]) -> tuple[tuple[int, int, str], int]:
        row = {"revision": rec.get("revision"), "depth": rec.get("depth") or 1}
        return _row_order("", row), order.get(str(rec.get("outcome")), len(order))

    return sorted(out, key=place)


def examples(records: Sequence[Mapping[str, Any]], per_cell: int = 1) -> list[str]:
    """One reproducible scenario per (revision, bad outcome): what a reviewer looks at first,
    as ``"REVISION OUTCOME: NODEID\n      DETAIL"`` (the whole detail, never cut)."""
    return [f"{rec.get('revision')} {rec.get('outcome')}: {rec.get('nodeid')}\n      {rec.get('detail', '')}"
            for rec in example_records(records, per_cell)]


def to_json(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``sweep`` block of the ``--gmem-report`` JSON."""
    return {
        "outcomes": list(OUTCOMES),
        "comparison": {label: r for label, r in rows(records)},
        "scenarios": sorted((dict(r) for r in records), key=lambda r: (str(r.get("base")), str(r.get("id")))),
    }


# --- pictures (drawn by picture.py) --------------------------------------------------------------
def svg(records: Sequence[Mapping[str, Any]], title: str = "guest_memfd conversion under injected faults") -> str:
    """A self-contained SVG: the table of counts with a bar per row, the legend, the examples."""
    from .picture import svg as draw

    return draw(records, title)


def html_page(records: Sequence[Mapping[str, Any]], command: str = "") -> str:
    """A self-contained HTML page: the table with its bars, the legend, the examples."""
    from .picture import html_page as page

    return page(records, command)


def write_pictures(json_path: str, records: Sequence[Mapping[str, Any]], command: str = "") -> list[str]:
    """Write ``NAME.svg`` and ``NAME.html`` next to ``NAME.json``; returns the paths."""
    import os

    stem = json_path[:-5] if json_path.endswith(".json") else json_path
    paths = [f"{stem}.svg", f"{stem}.html"]
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    with open(paths[0], "w", encoding="utf-8") as fh:
        fh.write(svg(records))
    with open(paths[1], "w", encoding="utf-8") as fh:
        fh.write(html_page(records, command))
    return paths


# --- the pattern the main job must show ---------------------------------------------------------
def check_pattern(report: Mapping[str, Any]) -> list[str]:
    """What is wrong with a ``--gmem-compare=all`` JSON report against the expected design
    comparison: each revision's single-fault row shows what its record expects
    (``Revision.expect``: ``rfc-v2`` KernelBug and WARN scenarios, ``fixed`` no KernelBug,
    ``prealloc`` and ``upstream`` only clean or successful ones; a scenario whose test skipped
    itself says nothing either way). Empty when all holds."""
    table = report.get("sweep", {}).get("comparison", {})
    problems = []
    for name, rev in REVISIONS.items():
        r = table.get(name)
        if r is None or not r["scenarios"]:
            problems.append(f"no {name} scenarios in the comparison")
            continue
        row = dict(r["outcomes"])
        if not meets(rev.expect, row):
            problems.append(f"{name} should have {EXPECTATIONS[rev.expect]}: {row}")
    return problems


def meets(expect: str, outcomes: Mapping[str, int]) -> bool:
    """Whether one row's outcome counts show what ``expect`` (a key of ``EXPECTATIONS``) says."""
    if expect == "defects":
        return bool(outcomes.get("kernel-bug") and outcomes.get("warn"))
    if expect == "no-kernel-bug":
        return not outcomes.get("kernel-bug")
    return not any(n for k, n in outcomes.items() if k not in ("clean", "success", "skipped"))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pytest_gmem.compare REPORT.json``: print the comparison of a JSON report and
    check the expected pattern (exit 1 if it does not hold)."""
    import json
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pytest_gmem.compare REPORT.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as fh:
        report = json.load(fh)
    records = report.get("sweep", {}).get("scenarios", [])
    print("\n".join(table_lines(records)))
    problems = check_pattern(report)
    for p in problems:
        print(f"comparison: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
