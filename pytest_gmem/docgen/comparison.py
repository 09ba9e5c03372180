"""The design comparison's pictures for the docs, from a fixed-seed run of the example suite.

``compare.svg`` and ``compare.html_page`` render them, as the plugin does next to
``--gmem-report``; only the input is pinned here: the examples' sweep under every revision
(``--gmem-compare=all``), seed 1, the scenarios in node-id order."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: The run behind the docs' pictures (and the README's fault summary).
COMMAND = ("python -m pytest examples -p gmem -n 2 --gmem-seed=1 --gmem-compare=all "
           "--gmem-report=gmem-report.json")
SVG = "docs/img/comparison.svg"
HTML = "docs/comparison/gmem-report.html"
#: Object numbers (``Block#304``) depend on how many tests a process ran before: not content.
_OBJECT_IDS = re.compile(r"(Block|block)#\d+")


def run_examples(root: Path) -> dict[str, Any]:
    """The JSON report of :data:`COMMAND`, run in ``root`` into a temporary file."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "gmem-report.json")
        argv = [sys.executable, *COMMAND.split()[1:-1], f"--gmem-report={report}", "-q", "-p", "no:randomly"]
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{COMMAND} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        with open(report, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
    return data


def records(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report's sweep scenarios in node-id order (the same whatever the xdist schedule)."""
    scenarios: Sequence[dict[str, Any]] = report.get("sweep", {}).get("scenarios", [])
    return sorted((dict(r) for r in scenarios), key=lambda r: str(r.get("nodeid")))


def pictures(report: Mapping[str, Any]) -> dict[str, str]:
    """``{path: text}`` of the docs' comparison picture and page."""
    from .. import compare

    recs = records(report)
    return {SVG: compare.svg(recs), HTML: compare.html_page(recs, COMMAND)}


def normalise(path: str, text: str) -> str:
    """What the staleness check compares: the text without per-process object numbers."""
    return _OBJECT_IDS.sub(r"\1#N", text)
