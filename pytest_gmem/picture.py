"""The design comparison drawn: a self-contained SVG (for the docs and the README) and an HTML
page (one table with a bar per row, the legend, one example scenario per bad outcome).

Pytest-free, read only by :mod:`pytest_gmem.compare` (``svg``, ``html_page``, ``write_pictures``).
Every outcome has a legend entry and a fill that survives greyscale (Okabe-Ito colours, hatches
for the bad outcomes); bars carry a percentage scale, a percentage per segment where it fits and
the counts in each segment's tooltip; a row with no scenario shows why instead of zeros; text is
wrapped, never cut.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from .compare import (
    Outcome,
    columns_shown,
    empty_note,
    example_records,
    outcome_style,
    outcomes_shown,
    row_label,
    rows,
)

TITLE = "guest_memfd conversion under injected faults"
SUBTITLE = ("fault-sweep scenarios per kernel revision, by outcome: one injected fault each "
            "(depth 2: a second one in the rollback of the first)")
TICKS = (0, 25, 50, 75, 100)
#: Average advance of a character, in em, for wrapping (DejaVu Sans is wide; Mono is 0.602).
SANS_EM, MONO_EM = 0.56, 0.61
e = html.escape


# --- shared pieces: hatches, bar segments, percentages ------------------------------------------
def _hatch_marks(hatch: str) -> str:
    """The marks of one 8x8 pattern tile, drawn over the outcome's colour."""
    ink = 'stroke="#000" stroke-opacity="0.7"'
    return {
        "stripes": f'<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" {ink} stroke-width="1.4"/>',
        "dots": '<circle cx="2" cy="2" r="1.3" fill="#000" fill-opacity="0.7"/>'
                '<circle cx="6" cy="6" r="1.3" fill="#000" fill-opacity="0.7"/>',
        "cross": f'<path d="M0,0 l8,8 M8,0 l-8,8" {ink} stroke-width="1.6"/>',
        "lines": f'<path d="M0,2 h8 M0,6 h8" {ink} stroke-width="1.2"/>',
        "bars": f'<path d="M2,0 v8 M6,0 v8" {ink} stroke-width="1"/>',
    }.get(hatch, f'<path d="M0,4 h8" {ink}/>')


def defs(outcomes: Sequence[Outcome]) -> str:
    """``<defs>`` with one fill pattern per hatched outcome (ids ``gmem-fill-KEY``)."""
    pats = "".join(
        f'<pattern id="gmem-fill-{e(o.key)}" width="8" height="8" patternUnits="userSpaceOnUse">'
        f'<rect width="8" height="8" fill="{o.colour}"/>{_hatch_marks(o.hatch)}</pattern>'
        for o in outcomes if o.hatch
    )
    return f"<defs>{pats}</defs>"


def fill(o: Outcome) -> str:
    return f"url(#gmem-fill-{e(o.key)})" if o.hatch else o.colour


def percent(n: int, total: int) -> str:
    """``n`` of ``total`` as a whole percentage ("<1%" for a small non-zero share)."""
    p = 100 * n / total if total else 0.0
    return "<1%" if 0 < p < 1 else f"{p:.0f}%"


def swatch(o: Outcome, x: float, y: float, w: float = 14, h: float = 14) -> str:
    return f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill(o)}" stroke="#333" stroke-width="0.6"/>'


def bar(label: str, row: Mapping[str, Any], outcomes: Sequence[Outcome], x: float, y: float,
        width: float, height: float) -> list[str]:
    """A row's bar: gridlines at the ticks, one segment per outcome (its share of the row's
    scenarios), its percentage printed inside where it fits, its count in the tooltip."""
    parts = [f'<line x1="{x + width * t / 100:.1f}" y1="{y - 4}" x2="{x + width * t / 100:.1f}" '
             f'y2="{y + height + 4}" stroke="#c8c8c8" stroke-width="1"/>' for t in TICKS]
    total = int(row["scenarios"])
    bx = float(x)
    for o in outcomes:
        n = int(row["outcomes"].get(o.key, 0))
        if not n or not total:
            continue
        w = width * n / total
        pct = percent(n, total)
        tip = f"{label}: {o.heading} {n} of {total} scenarios ({pct}): {o.meaning}"
        parts.append(f'<rect x="{bx:.1f}" y="{y}" width="{w:.1f}" height="{height}" fill="{fill(o)}" '
                     f'stroke="#fff" stroke-width="1"><title>{e(tip)}</title></rect>')
        if w >= 9 * len(pct) + 6:
            parts.append(f'<text class="pct" x="{bx + w / 2:.1f}" y="{y + height / 2 + 4:.1f}" '
                         'text-anchor="middle" '
                         'font-size="11" font-weight="bold" fill="#000" stroke="#fff" stroke-width="3" '
                         f'stroke-linejoin="round" paint-order="stroke" pointer-events="none">{pct}</text>')
        bx += w
    return parts


def axis(x: float, y: float, width: float) -> list[str]:
    """The percentage scale's labels, under their gridlines."""
    anchor = {0: "start", 100: "end"}
    return [f'<text x="{x + width * t / 100:.1f}" y="{y}" text-anchor="{anchor.get(t, "middle")}" '
            f'font-size="11" font-weight="normal" fill="#444">{t}%</text>' for t in TICKS]


def wrap(text: str, width_px: float, font_px: float, em: float = SANS_EM) -> list[str]:
    """``text`` in lines that fit ``width_px``: broken at spaces and hyphens, a word longer than
    a line split (every character kept)."""
    chars = max(10, int(width_px / (font_px * em)))
    return textwrap.wrap(text, chars, break_on_hyphens=True) or [""]


def tspans(lines: Sequence[str], x: float, line_h: float) -> str:
    return "".join(f'<tspan x="{x}" dy="{0 if i == 0 else line_h}">{e(s)}</tspan>' for i, s in enumerate(lines))


# --- the SVG --------------------------------------------------------------------------------------
def svg(records: Sequence[Mapping[str, Any]], title: str = TITLE, with_examples: bool = True) -> str:
    """The picture: heading, the table of counts with a bar per row, the legend, and (unless
    ``with_examples`` is false) one example scenario per revision and bad outcome."""
    rs = rows(records)
    outs, every = columns_shown(rs), outcomes_shown(rs)
    label_w, scen_w, cell_w, gap, bar_w, row_h = 140, 84, 90, 18, 380, 30
    counts_x = label_w + scen_w
    bar_x = counts_x + cell_w * len(outs) + gap
    width = bar_x + bar_w + 24
    body: list[str] = []
    y = 24
    body.append(f'<text x="12" y="{y}" font-size="17" font-weight="bold">{e(title)}</text>')
    for line in wrap(SUBTITLE, width - 24, 13):
        y += 19
        body.append(f'<text x="12" y="{y}" fill="#444">{e(line)}</text>')
    # the header: column headings with the outcome's fill under them, the scale over the bars
    y += 30
    body.append(f'<text x="{bar_x + bar_w / 2}" y="{y - 14}" text-anchor="middle" font-weight="bold">'
                "share of scenarios</text>")
    body.append(f'<text x="12" y="{y}" font-weight="bold">revision</text>')
    body.append(f'<text x="{counts_x - 8}" y="{y}" text-anchor="end" font-weight="bold">scenarios</text>')
    for i, o in enumerate(outs):
        cx = counts_x + cell_w * (i + 1)
        body.append(f'<text x="{cx - 8}" y="{y}" text-anchor="end" font-weight="bold">{e(o.heading)}'
                    f"<title>{e(o.meaning)}</title></text>")
        body.append(swatch(o, cx - cell_w + 10, y + 5, cell_w - 18, 6))
    body.extend(axis(bar_x, y, bar_w))
    top = y + 12
    for i, (label, r) in enumerate(rs):
        y0 = top + row_h * i
        yt = y0 + row_h / 2 + 5
        shade = "#f2f4f7" if i % 2 == 0 else "#ffffff"
        body.append(f'<rect x="6" y="{y0}" width="{width - 12}" height="{row_h}" fill="{shade}"/>')
        body.append(f'<text x="12" y="{yt}">{e(label)}</text>')
        body.append(f'<text x="{counts_x - 8}" y="{yt}" text-anchor="end">{r["scenarios"]}</text>')
        note = empty_note(r)
        if note:
            body.append(f'<text x="{counts_x + 12}" y="{yt}" font-style="italic" fill="#333">{e(note)}</text>')
            continue
        for j, o in enumerate(outs):
            n = int(r["outcomes"].get(o.key, 0))
            style = (' font-weight="bold"' if o.bad else "") if n else ' fill="#999"'
            body.append(f'<text x="{counts_x + cell_w * (j + 1) - 8}" y="{yt}" text-anchor="end"{style}>{n}'
                        f"<title>{e(label)}: {n} {e(o.heading)}</title></text>")
        body.extend(bar(label, r, outs, bar_x, y0 + 6, bar_w, row_h - 12))
    y = top + row_h * len(rs) + 16
    body.extend(axis(bar_x, y, bar_w))
    y, legend = _svg_legend(every, y + 20, width)
    body.extend(legend)
    if with_examples:
        y, ex = _svg_examples(records, y + 10, width)
        body.extend(ex)
    height = y + 16
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">',
        f"<title>{e(title)}</title>",
        defs(every),
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    return "\n".join([*head, *body, "</svg>"]) + "\n"


def _svg_legend(outs: Sequence[Outcome], y: int, width: int) -> tuple[int, list[str]]:
    """The legend in two columns: swatch, name, meaning (wrapped); returns the next free y."""
    parts = [f'<text x="12" y="{y}" font-weight="bold">outcomes</text>']
    col_w = (width - 24) / 2
    y += 10
    for k in range(0, len(outs), 2):
        line_ys = [y]
        for c, o in enumerate(outs[k:k + 2]):
            x = 12 + col_w * c
            parts.append(swatch(o, x, y + 4))
            parts.append(f'<text x="{x + 22}" y="{y + 16}" font-weight="bold">{e(o.heading)}</text>')
            lines = wrap(o.meaning, col_w - 116, 12)
            parts.append(f'<text x="{x + 104}" y="{y + 16}" font-size="12">{tspans(lines, x + 104, 15)}</text>')
            line_ys.append(y + 15 * len(lines))
        y = max(line_ys) + 8
    return y + 8, parts


def _svg_examples(records: Sequence[Mapping[str, Any]], y: int, width: int) -> tuple[int, list[str]]:
    """One scenario per revision, depth and bad outcome: its node id and detail, wrapped."""
    recs = example_records(records)
    if not recs:
        return y, []
    parts = [f'<text x="12" y="{y + 12}" font-weight="bold">one scenario per revision and outcome '
             "(run its node id to reproduce it)</text>"]
    y += 20
    for rec in recs:
        o = outcome_style(str(rec.get("outcome")))
        y += 18
        parts.append(swatch(o, 12, y - 11, 12, 12))
        parts.append(f'<text x="30" y="{y}" font-weight="bold">{e(row_label(rec))} {e(o.heading)}</text>')
        for text, font, size, em in ((str(rec.get("nodeid", "")), "DejaVu Sans Mono, monospace", 11, MONO_EM),
                                     (str(rec.get("detail", "")), "DejaVu Sans, Arial, sans-serif", 12, SANS_EM)):
            if not text:
                continue
            lines = wrap(text, width - 60, size, em)
            parts.append(f'<text x="30" y="{y + 16}" font-family="{font}" font-size="{size}">'
                         f"{tspans(lines, 30, size + 3)}</text>")
            y += 16 + (size + 3) * (len(lines) - 1)
        y += 6
    return y + 4, parts


# --- the HTML page --------------------------------------------------------------------------------
_CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:1.5em 2em;color:#111;max-width:1400px}
h1{font-size:1.5em;margin:0 0 .3em} h2{font-size:1.15em;margin:1.4em 0 .5em}
p.sub{color:#444;margin:.2em 0 1em}
table{border-collapse:collapse;font-size:14px}
th,td{padding:4px 9px;text-align:right;white-space:nowrap}
th{border-bottom:2px solid #333;vertical-align:bottom} th svg{display:block;margin:3px 0 0 auto}
tbody tr:nth-child(odd){background:#f2f4f7}
td:first-child,th:first-child{text-align:left}
td.zero{color:#999} td.bad{font-weight:bold}
td.note{text-align:left;font-style:italic;color:#333;white-space:normal}
td.bar,th.bar{text-align:left;padding-left:14px} td.bar svg{display:block}
tfoot td{border-top:1px solid #999}
.legend{font-size:14px;display:grid;grid-template-columns:repeat(auto-fill,minmax(34em,1fr));gap:.35em 2em}
.legend{margin:0;padding:0}
.legend div{display:grid;grid-template-columns:8.5em 1fr;gap:.5em;align-items:baseline}
.legend dt{font-weight:bold;display:flex;gap:.4em;align-items:center}
.legend dd{margin:0;overflow-wrap:anywhere}
ul.examples{padding-left:1.2em;font-size:14px} ul.examples li{margin:.5em 0;overflow-wrap:anywhere}
ul.examples code{font-size:12.5px;overflow-wrap:anywhere;word-break:break-word}
ul.examples .detail{display:block;white-space:pre-wrap;overflow-wrap:anywhere}
"""


def _html_swatch(o: Outcome, w: int = 14, h: int = 14) -> str:
    return f'<svg width="{w}" height="{h}" aria-hidden="true">{swatch(o, 0.5, 0.5, w - 1, h - 1)}</svg>'


def html_page(records: Sequence[Mapping[str, Any]], command: str = "") -> str:
    """The page: one table (counts and a bar per row, a row without scenarios explained), the
    legend, and one example scenario per revision and bad outcome, wrapped by CSS."""
    rs = rows(records)
    outs, every = columns_shown(rs), outcomes_shown(rs)
    bar_w, bar_h = 380, 20
    heads = "".join(f'<th title="{e(o.meaning)}">{e(o.heading)}{_html_swatch(o, 60, 7)}</th>' for o in outs)
    scale = (f'<svg width="{bar_w}" height="14" aria-hidden="true">{"".join(axis(0, 11, bar_w))}</svg>')
    body = []
    for label, r in rs:
        cells = f"<td>{e(label)}</td><td>{r['scenarios']}</td>"
        note = empty_note(r)
        if note:
            body.append(f'<tr>{cells}<td class="note" colspan="{len(outs) + 1}">{e(note)}</td></tr>')
            continue
        for o in outs:
            n = int(r["outcomes"].get(o.key, 0))
            cls = ' class="zero"' if not n else (' class="bad"' if o.bad else "")
            cells += f'<td{cls} title="{e(label)}: {n} {e(o.heading)}">{n}</td>'
        seg = "".join(bar(label, r, outs, 0, 4, bar_w, bar_h))
        cells += f'<td class="bar"><svg width="{bar_w}" height="{bar_h + 8}">{seg}</svg></td>'
        body.append(f"<tr>{cells}</tr>")
    legend = "".join(f"<div><dt>{_html_swatch(o)}{e(o.heading)}</dt><dd>{e(o.meaning)}</dd></div>" for o in every)
    ex = "".join(
        f"<li><b>{e(row_label(rec))} {e(outcome_style(str(rec.get('outcome'))).heading)}</b> "
        f"<code>{e(str(rec.get('nodeid', '')))}</code>"
        f'<span class="detail">{e(str(rec.get("detail", "")))}</span></li>'
        for rec in example_records(records)
    )
    cmd = f"<p>Measured with <code>{e(command)}</code></p>" if command else ""
    examples = f'<h2>One scenario per revision and outcome</h2><ul class="examples">{ex}</ul>' if ex else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pytest-gmem fault sweep: design comparison</title>
<style>{_CSS}</style>
</head><body>
<svg width="0" height="0" style="position:absolute" aria-hidden="true">{defs(every)}</svg>
<h1>{e(TITLE)}</h1>
<p class="sub">{e(SUBTITLE)}</p>
{cmd}
<table>
<thead><tr><th>revision</th><th>scenarios</th>{heads}<th class="bar">share of scenarios{scale}</th></tr></thead>
<tbody>
{"".join(body)}
</tbody>
<tfoot><tr><td colspan="{len(outs) + 2}"></td><td class="bar">{scale}</td></tr></tfoot>
</table>
<h2>Outcomes</h2>
<dl class="legend">{legend}</dl>
{examples}
</body></html>
"""
