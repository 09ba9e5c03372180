"""The design comparison's pictures (SVG, HTML) and terminal table: a legend entry per outcome,
a note in place of an empty depth-2 row, one table, percentages, messages never cut, fills that
survive greyscale."""

from __future__ import annotations

import html
import itertools
import json
import re
from typing import Any

import pytest

from pytest_gmem import compare
from pytest_gmem.revisions import REVISIONS
from pytest_gmem.sweep import OUTCOMES

LONG_DETAIL = ("KernelBug: kernel bug in kvm_gmem_restructure_folios_in_range(): rollback index underflow: "
               + " ".join(f"word{i}" for i in range(80)) + " the very end of the message")
LONG_NODEID = ("examples/test_sweep_conversions.py::test_sweep_convert_two_huge_pages_to_shared[rfc-v2-sweep-"
               "__kvm_gmem_filemap_add_folio-ENOMEM-1-rollback-__kvm_gmem_filemap_add_folio-ENOMEM-1-tail]")


def _rec(revision: str, outcome: str, n: int, depth: int = 1, detail: str = "", nodeid: str = "") -> dict[str, Any]:
    return {"revision": revision, "depth": depth, "outcome": outcome, "compared": True,
            "nodeid": nodeid or f"t.py::test_x[{revision}-sweep-p-ENOMEM-{n}-d{depth}]",
            "detail": detail or f"{outcome} detail {n}"}


def _records() -> list[dict[str, Any]]:
    """rfc-v2 with every outcome (and a long message), fixed 3 clean of 4, prealloc and upstream
    at depth 1 only, rfc-v2 at depth 2: so prealloc, upstream and fixed have empty depth-2 rows."""
    recs = [_rec("rfc-v2", o, i) for i, o in enumerate(OUTCOMES)]
    recs.append(_rec("rfc-v2", "kernel-bug", 99, detail=LONG_DETAIL, nodeid=LONG_NODEID))
    recs += [_rec("fixed", "clean", i) for i in range(3)] + [_rec("fixed", "success", 3)]
    recs += [_rec("prealloc", "clean", 0), _rec("upstream", "success", 0)]
    recs += [_rec("rfc-v2", "warn", 0, depth=2), _rec("rfc-v2", "kernel-bug", 1, depth=2)]
    return recs


def _text(svg: str) -> str:
    """The SVG's visible text, whitespace removed (tspans joined)."""
    return "".join(html.unescape(re.sub(r"<title>.*?</title>|<[^>]+>", "", svg)).split())


def test_every_outcome_has_a_legend_entry_in_plain_words() -> None:
    assert [o.key for o in compare.OUTCOME_STYLES] == list(OUTCOMES)
    recs = [*_records(), _rec("fixed", "brand-new", 7)]  # an outcome compare does not know yet
    svg, page = compare.svg(recs), compare.html_page(recs)
    text = _text(svg)
    for o in [*compare.OUTCOME_STYLES, compare.outcome_style("brand-new")]:
        assert len(o.meaning.split()) >= 5, o  # a phrase, not a label
        assert f"{html.escape(o.heading)}</dt><dd>{html.escape(o.meaning)}</dd>" in page, o.key
        assert "".join(f"{o.heading}{o.meaning}".split()) in text, o.key
    assert "no description yet" in compare.outcome_style("brand-new").meaning


def test_an_empty_depth2_row_shows_why_from_the_revision_registry() -> None:
    recs = _records()
    lines = compare.table_lines(recs)
    note = "no rollback phase: nothing to inject at depth 2"
    assert [line.split("  ")[0] for line in lines if note in line] == ["prealloc depth 2", "upstream depth 2"]
    assert REVISIONS["fixed"].has_rollback and not REVISIONS["prealloc"].has_rollback
    (fixed2,) = [line for line in lines if line.startswith("fixed depth 2")]
    assert "no scenario: no rollback was reached" in fixed2 and note not in fixed2
    (rfc2,) = [line for line in lines if line.startswith("rfc-v2 depth 2")]
    assert rfc2.split()[3:6] == ["2", "0", "0"]  # a row with scenarios keeps its counts
    svg, page = compare.svg(recs), compare.html_page(recs)
    assert svg.count(note) == 2 and page.count(note) == 2
    assert re.search(r"<tr><td>prealloc depth 2</td><td>0</td><td class=\"note\"[^>]*>" + note, page)


def test_the_page_has_one_table_with_each_row_once() -> None:
    page = compare.html_page(_records(), "pytest examples")
    assert page.count("<table") == 1 and page.count("</table>") == 1
    for label, _row in compare.rows(_records()):
        assert page.count(f"<td>{label}</td>") == 1, label
    assert "<svg" in page and "Measured with <code>pytest examples</code>" in page


def test_messages_are_wrapped_never_cut() -> None:
    recs = _records()
    svg, page = compare.svg(recs), compare.html_page(recs)
    assert html.escape(LONG_DETAIL) in page and html.escape(LONG_NODEID) in page
    assert "overflow-wrap:anywhere" in page
    assert "".join(LONG_DETAIL.split()) in _text(svg) and LONG_NODEID in _text(svg)
    (block,) = [t for t in re.findall(r"<text[^>]*>((?:<tspan[^>]*>[^<]*</tspan>)+)</text>", svg) if "word0 " in t]
    pieces = [html.unescape(p) for p in re.findall(r">([^<]*)</tspan>", block)]
    assert len(pieces) > 1 and " ".join(pieces) == LONG_DETAIL  # wrapped at spaces, every word kept
    assert any(LONG_DETAIL in line for line in compare.examples(recs))  # the terminal's too


def test_bars_have_a_scale_percentages_and_counts_in_tooltips() -> None:
    recs = _records()
    svg, page = compare.svg(recs), compare.html_page(recs)
    for picture in (svg, page):
        for tick in ("0%", "25%", "50%", "75%", "100%"):
            assert f">{tick}</text>" in picture
        segments = re.findall(r'<text class="pct"[^>]*>([^<]*)</text>', picture)
        assert {"75%", "25%"} <= set(segments)  # fixed: 3 clean, 1 success of 4
        assert "fixed: clean 3 of 4 scenarios (75%)" in picture  # the segment's tooltip


def _luminance(colour: str) -> float:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b


def test_outcome_fills_are_told_apart_in_greyscale() -> None:
    styles = compare.OUTCOME_STYLES
    assert all(o.hatch for o in styles if o.key in ("warn", "invariant", "kernel-bug", "failed", "not-fired"))
    for a, b in itertools.combinations(styles, 2):
        assert a.hatch != b.hatch or abs(_luminance(a.colour) - _luminance(b.colour)) >= 40, (a.key, b.key)
    svg = compare.svg(_records())
    for o in styles:
        if o.hatch:
            assert f'<pattern id="gmem-fill-{o.key}"' in svg and f'fill="url(#gmem-fill-{o.key})"' in svg


def test_the_main_job_writes_the_note_and_pictures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_two="""
import pytest

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points="kvm_gmem_shareability_store", max_nth=1, depth=2, expect="any")
def test_convert(gmem):
    gmem.guest_write(0, b"x")
    try:
        gmem.convert_shared(0, "4M")
    except OSError:
        pass
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-compare=fixed,prealloc", "--gmem-report=r.json")
    result.stdout.fnmatch_lines(["fixed depth 2 * [1-9]*",
                                 "prealloc depth 2 * 0  no rollback phase: nothing to inject at depth 2"])
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["sweep"]["comparison"]["prealloc depth 2"]["scenarios"] == 0  # the JSON keeps its rows
    page = (pytester.path / "r.html").read_text()
    assert page.count("<table") == 1 and "no rollback phase: nothing to inject at depth 2" in page
    assert "no rollback phase" in (pytester.path / "r.svg").read_text()
