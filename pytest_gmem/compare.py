"""The design comparison: per revision, how the fault-sweep scenarios ended, as a terminal
table, a JSON block, a self-contained SVG and an HTML page.

Pytest-free: everything is built from the sweep records (dicts of builtins, see
``sweep.ItemState.record``) that ride on the test reports, so it is the same under xdist.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .revisions import EXPECTATIONS, REVISIONS, revision_names
from .sweep import OUTCOMES, tally

#: Column order and headings of the comparison (the outcomes of ``sweep.OUTCOMES``).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("clean", "clean"),
    ("success", "success"),
    ("warn", "WARN"),
    ("invariant", "invariant"),
    ("kernel-bug", "KernelBug"),
    ("not-fired", "not fired"),
    ("failed", "failed"),
    ("skipped", "skipped"),
)
#: Fill colours of the picture, per outcome.
COLOURS = {
    "clean": "#2e7d32", "success": "#66bb6a", "warn": "#f9a825", "invariant": "#ef6c00",
    "kernel-bug": "#c62828", "not-fired": "#9e9e9e", "failed": "#6a1b9a",
    "skipped": "#78909c",
}
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
    cols = [(k, h) for k, h in COLUMNS if k in ("clean", "success", "warn", "invariant", "kernel-bug")
            or any(r["outcomes"].get(k) for _, r in rs)]
    width = max(len("revision"), *(len(label) for label, _ in rs))
    head = f"{'revision':<{width}}  {'scenarios':>9}" + "".join(f"  {h:>9}" for _, h in cols)
    lines = [head, "-" * len(head)]
    for label, r in rs:
        counts = "".join(f"  {r['outcomes'].get(k, 0):>9}" for k, _ in cols)
        lines.append(f"{label:<{width}}  {r['scenarios']:>9}{counts}")
    return lines


def examples(records: Sequence[Mapping[str, Any]], per_cell: int = 1) -> list[str]:
    """One reproducible scenario per (revision, bad outcome): what a reviewer looks at first."""
    seen: dict[tuple[str, int, str], int] = {}
    out = []
    for rec in records:
        outcome = str(rec.get("outcome"))
        if outcome in ("clean", "success", "skipped"):
            continue
        key = (str(rec.get("revision")), int(rec.get("depth") or 1), outcome)
        if seen.get(key, 0) >= per_cell:
            continue
        seen[key] = seen.get(key, 0) + 1
        out.append(f"{key[0]} {outcome}: {rec.get('nodeid')}\n      {rec.get('detail', '')}"[:400])
    return out


def to_json(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``sweep`` block of the ``--gmem-report`` JSON."""
    return {
        "outcomes": list(OUTCOMES),
        "comparison": {label: r for label, r in rows(records)},
        "scenarios": sorted((dict(r) for r in records), key=lambda r: (str(r.get("base")), str(r.get("id")))),
    }


# --- pictures ---------------------------------------------------------------------------------
def svg(records: Sequence[Mapping[str, Any]], title: str = "guest_memfd conversion under injected faults") -> str:
    """A self-contained SVG: a table of counts, and per row a bar split by outcome."""
    rs = rows(records)
    cols = COLUMNS
    label_w, cell_w, bar_w, row_h, top = 150, 86, 260, 28, 64
    width = label_w + cell_w * (len(cols) + 1) + bar_w + 30
    height = top + row_h * (len(rs) + 1) + 56
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="12" y="24" font-size="16" font-weight="bold">{e(title)}</text>',
        '<text x="12" y="44" fill="#555">fault scenarios per kernel revision, by outcome '
        "(pytest-gmem fault sweep, one fault per scenario unless depth 2)</text>",
    ]
    y = top + 18
    parts.append(f'<text x="12" y="{y}" font-weight="bold">revision</text>')
    x = label_w
    for h in ["scenarios", *(h for _, h in cols)]:
        parts.append(f'<text x="{x + cell_w - 8}" y="{y}" text-anchor="end" font-weight="bold">{e(h)}</text>')
        x += cell_w
    parts.append(f'<text x="{x + 8}" y="{y}" font-weight="bold">share of scenarios</text>')
    for i, (label, r) in enumerate(rs):
        y0 = top + row_h * (i + 1)
        y = y0 + 18
        if i % 2 == 0:
            parts.append(f'<rect x="6" y="{y0 + 2}" width="{width - 12}" height="{row_h}" fill="#f4f6f8"/>')
        parts.append(f'<text x="12" y="{y}">{e(label)}</text>')
        x = label_w
        cells = [("scenarios", r["scenarios"]), *((k, r["outcomes"].get(k, 0)) for k, _ in cols)]
        for k, n in cells:
            bold = ' font-weight="bold"' if n and k in ("warn", "invariant", "kernel-bug", "failed") else ""
            colour = COLOURS.get(k, "#000") if n and k != "scenarios" else ("#000" if n else "#aaa")
            parts.append(f'<text x="{x + cell_w - 8}" y="{y}" text-anchor="end" fill="{colour}"{bold}>{n}</text>')
            x += cell_w
        bx, total = float(x + 8), max(1, int(r["scenarios"]))
        for k, _ in cols:
            n = int(r["outcomes"].get(k, 0))
            if not n:
                continue
            w = bar_w * n / total
            parts.append(f'<rect x="{bx:.1f}" y="{y0 + 7}" width="{w:.1f}" height="{row_h - 12}" '
                         f'fill="{COLOURS[k]}"><title>{e(label)}: {n} {e(k)}</title></rect>')
            bx += w
    y = top + row_h * (len(rs) + 1) + 24
    x = 12
    for k, h in cols:
        parts.append(f'<rect x="{x}" y="{y - 11}" width="12" height="12" fill="{COLOURS[k]}"/>')
        parts.append(f'<text x="{x + 16}" y="{y}">{e(h)}</text>')
        x += 22 + 8 * len(h) + 14
    parts.append(f'<text x="12" y="{y + 22}" fill="#555" font-size="11">clean: the fault reached the caller '
                 "as an error and the state was restored; success: the operation succeeded anyway</text>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def html_page(records: Sequence[Mapping[str, Any]], command: str = "") -> str:
    """A self-contained HTML page: the SVG, the table as HTML, one example per bad outcome."""
    rs = rows(records)
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in ["revision", "scenarios", *(h for _, h in COLUMNS)])
    body = []
    for label, r in rs:
        cells = "".join(
            f'<td style="color:{COLOURS[k] if r["outcomes"].get(k) else "#aaa"}">{r["outcomes"].get(k, 0)}</td>'
            for k, _ in COLUMNS
        )
        body.append(f"<tr><td>{e(label)}</td><td>{r['scenarios']}</td>{cells}</tr>")
    ex = "".join(f"<li><code>{e(line)}</code></li>" for line in examples(records))
    cmd = f"<p>Measured with <code>{e(command)}</code></p>" if command else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pytest-gmem fault sweep: design comparison</title>
<style>body{{font-family:DejaVu Sans,Arial,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body>
<h1>guest_memfd conversion under injected faults</h1>
{cmd}
{svg(records)}
<table><tr>{head}</tr>
{"".join(body)}
</table>
<h2>One scenario per revision and outcome</h2><ul>{ex}</ul>
</body></html>
"""


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
