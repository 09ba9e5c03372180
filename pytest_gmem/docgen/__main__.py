"""``python -m pytest_gmem.docgen``: write the generated docs pages, or check them.

    python -m pytest_gmem.docgen                   write every generated page and picture
    python -m pytest_gmem.docgen --check           exit 1 naming the stale ones (CI)
    python -m pytest_gmem.docgen --report R.json   take the comparison from a --gmem-compare=all
                                                   report instead of running the examples
    python -m pytest_gmem.docgen --no-comparison   the text pages only (fast)
    python -m pytest_gmem.docgen examples [FILE...] run the commands the pages show, compare
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import comparison
from .kernel import kernel_page
from .pages import fault_points_page, home_page, markers_page, options_page

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "python -m pytest_gmem.docgen"
#: The generated text pages and what builds each.
PAGES: dict[str, Callable[[], str]] = {
    "docs/reference/markers.md": markers_page,
    "docs/reference/options.md": options_page,
    "docs/reference/kernel.md": kernel_page,
    "docs/fault-points.md": fault_points_page,
    "docs/index.md": lambda: home_page(ROOT),
}


def generate(report: str | None, with_comparison: bool) -> dict[str, str]:
    out = {path: build() for path, build in PAGES.items()}
    if with_comparison:
        if report:
            with open(report, encoding="utf-8") as fh:
                data = json.load(fh)
        else:
            data = comparison.run_examples(ROOT)
        out.update(comparison.pictures(data))
    return out


def stale(pages: dict[str, str]) -> dict[str, str]:
    """The generated files whose committed text differs from what the code generates now, each
    with the start of its diff (committed against generated)."""
    bad = {}
    for path, text in pages.items():
        file = ROOT / path
        old = comparison.normalise(path, file.read_text(encoding="utf-8")) if file.exists() else ""
        new = comparison.normalise(path, text)
        if not file.exists() or old != new:
            bad[path] = _first_difference(path, old, new)
    return bad


def _first_difference(path: str, old: str, new: str, lines: int = 12) -> str:
    """The start of a unified diff of ``old`` (the committed file) against ``new``."""
    import difflib
    import itertools

    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), f"{path} (committed)", f"{path} (generated)",
                                n=1, lineterm="")
    return "\n".join(line[:200] for line in itertools.islice(diff, lines))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["examples"]:
        from .blocks import main as examples_main

        return examples_main(args[1:])
    p = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    p.add_argument("--report", metavar="PATH", help="a --gmem-compare=all JSON report to take the comparison from")
    p.add_argument("--no-comparison", action="store_true", help="skip the comparison picture (no example run)")
    opts = p.parse_args(args)
    pages = generate(opts.report, not opts.no_comparison)
    if opts.check:
        bad = stale(pages)
        for path, diff in bad.items():
            print(f"docgen: {path} is stale; regenerate with: {REGENERATE}", file=sys.stderr)
            print(diff, file=sys.stderr)
        if not bad:
            print(f"docgen: {len(pages)} generated files are current")
        return 1 if bad else 0
    for path, text in pages.items():
        file = ROOT / path
        file.parent.mkdir(parents=True, exist_ok=True)
        if not file.exists() or file.read_text(encoding="utf-8") != text:
            file.write_text(text, encoding="utf-8")
            print(f"docgen: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
