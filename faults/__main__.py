"""``python -m faults``: list the fault-point catalog, check a spec, generate the docs page.

    python -m faults list [GLOB] [--json]    every declared point (providers are imported first)
    python -m faults parse SPEC [--check]    the armings a spec stands for, or a caret error
    python -m faults docs > docs/fault-points.md
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import TextIO

from .errors import FaultError, suggest
from .grammar import arm, parse
from .points import PointInfo, catalog
from .scope import scope
from .spec import ArmingSpec, format_kind, format_spec


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 nothing matched, 2 bad input)."""
    out = out if out is not None else sys.stdout
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list(args.glob, args.json, out)
    if args.command == "parse":
        return _parse(args.spec, args.check, args.json, out)
    out.write(docs_markdown(catalog()))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m faults", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="print the fault-point catalog")
    ls.add_argument("glob", nargs="?", default="*", help="only points matching this glob (default: *)")
    ls.add_argument("--json", action="store_true", help="print JSON instead of text")
    ps = sub.add_parser("parse", help="print the armings a spec stands for")
    ps.add_argument("spec", help="a spec in the text grammar, e.g. 'my_point=2*off->1*enomem'")
    ps.add_argument("--check", action="store_true",
                    help="also check the points exist and can produce the kinds")
    ps.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub.add_parser("docs", help="print the catalog as a markdown page")
    return p


def _list(glob: str, as_json: bool, out: TextIO) -> int:
    points = [p for p in catalog() if fnmatch.fnmatchcase(p.name, glob)]
    if not points:
        sys.stderr.write(f"no fault point matches {glob!r}"
                         f"{suggest(glob, [p.name for p in catalog()])}\n")
        return 1
    if as_json:
        json.dump([_point_json(p) for p in points], out, indent=2)
        out.write("\n")
        return 0
    width = max(len(p.name) for p in points)
    columns = max(60, shutil.get_terminal_size((100, 24)).columns - 1)
    for p in points:
        out.write(f"{p.name:<{width}}  {', '.join(sorted(p.kinds)) or '-'}  ({p.module})\n")
        if p.doc:
            indent = " " * (width + 2) if columns - width > 40 else "    "
            out.write(textwrap.fill(p.doc, columns, initial_indent=indent, subsequent_indent=indent))
            out.write("\n")
        if p.reached:
            indent = " " * (width + 2) if columns - width > 40 else "    "
            out.write(textwrap.fill(f"Reached: {p.reached}", columns, initial_indent=indent,
                                    subsequent_indent=indent))
            out.write("\n")
    return 0


def _point_json(p: PointInfo) -> dict[str, object]:
    return {"name": p.name, "kinds": sorted(p.kinds), "module": p.module, "doc": p.doc, "reached": p.reached}


def _parse(text: str, check: bool, as_json: bool, out: TextIO) -> int:
    try:
        specs = parse(text, "the command line")
        if check:
            with scope(inherit=False):  # arm for real, in a scope that ends at once
                arm(text, "the command line")
    except FaultError as e:  # every bad spec alike: the message, its caret, no class name
        sys.stderr.write(f"{e}\n")
        return 2
    if as_json:
        json.dump([_spec_json(s) for s in specs], out, indent=2)
        out.write("\n")
        return 0
    if not specs:
        out.write("(no armings)\n")
    for i, s in enumerate(specs, 1):
        out.write(f"{i}. {format_spec(s)}\n")
        for label, value in _spec_lines(s):
            out.write(f"   {label:<6} {value}\n")
    return 0


def _spec_lines(s: ArmingSpec) -> list[tuple[str, str]]:
    lines = [("point", s.pattern)]
    if s.when:
        lines.append(("when", ", ".join(f"{k}={v!r}" for k, v in s.when)))
    if s.rule is None:
        terms = [f"{t.percent:g}% " if t.percent is not None else "" for t in s.terms]
        steps = [f"{pct}{'' if t.count is None else f'{t.count}x '}{format_kind(t.kind)}"
                 for pct, t in zip(terms, s.terms, strict=True)]
        lines.append(("chain", " -> ".join(steps)))
    else:
        r = s.rule
        rule = [f"kind={format_kind(s.kind)}", f"nth={r.nth or 1}", f"times={r.times or 'inf'}"]
        rule += [f"every={r.every}"] if r.every else []
        rule += [f"skip={r.skip}"] if r.skip else []
        rule += [f"probability={r.probability:g}"] if r.probability is not None else []
        lines.append(("rule", " ".join(rule)))
    if s.seed is not None:
        lines.append(("seed", str(s.seed)))
    return lines


def _spec_json(s: ArmingSpec) -> dict[str, object]:
    rule = None if s.rule is None else {
        "nth": s.rule.nth, "times": s.rule.times, "every": s.rule.every, "skip": s.rule.skip,
        "probability": s.rule.probability}
    return {
        "text": s.text, "canonical": format_spec(s), "pattern": s.pattern,
        "terms": [{"kind": format_kind(t.kind), "count": t.count, "percent": t.percent}
                  for t in s.terms],
        "rule": rule, "when": dict(s.when), "seed": s.seed,
    }


def docs_markdown(points: list[PointInfo]) -> str:
    """The fault-point catalog as a markdown page (``docs/fault-points.md``)."""
    lines = [
        "# Fault points",
        "",
        "<!-- generated by `python -m faults docs > docs/fault-points.md`; do not edit -->",
        "",
        f"{len(points)} declared fault points. Arm one with `faults.inject(name, kind)`, the "
        "`--gmem-fault` option or the `GMEM_FAULTS` variable (see `faults-grammar.md`).",
        "",
        "| point | kinds | module |",
        "|---|---|---|",
    ]
    lines += [f"| [`{p.name}`](#{_anchor(p.name)}) | {', '.join(sorted(p.kinds)) or '-'} | "
              f"`{p.module}` |" for p in points]
    for p in points:
        lines += ["", f"## `{p.name}`", "", f"Kinds: {', '.join(sorted(p.kinds)) or '-'}. "
                  f"Declared in `{p.module}`.", "", p.doc or "(no description)"]
        if p.reached:
            lines += ["", f"**Reached:** {p.reached}"]
    return "\n".join(lines) + "\n"


def _anchor(name: str) -> str:
    # GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped.
    return "".join(c for c in name.lower() if c.isalnum() or c in "-_")


def run_cli(argv: Sequence[str] | None = None) -> int:
    """``main`` on the real stdout; a reader that stops early (``| head``) ends the command
    quietly, as with other command-line tools, instead of with a BrokenPipeError traceback."""
    try:
        status = main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, the status a shell shows for a pipe's killed writer
    return status


if __name__ == "__main__":
    sys.exit(run_cli())
