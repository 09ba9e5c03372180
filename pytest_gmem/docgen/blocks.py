"""Run the commands the docs show and compare their output (``python -m pytest_gmem.docgen examples``).

A fenced block that shows output (no language, ``console`` or ``text``) must say, in an HTML
comment on the line before it, what the check does with it:

``<!-- check: run [in=scratch] [env=NAME=VALUE ...] -->``
    a transcript: each ``$ command`` line is run with ``bash`` (in the repository, or with
    ``in=scratch`` in the page's scratch directory), and each line after it up to the next
    ``$`` line must be a line of its output (stdout and stderr), in the order shown; the output
    may have other lines between them (``...`` marks such gaps for the reader).
``<!-- check: example -->``
    shown as an example (numbers that vary by seed or machine): not run.

and a code block of any language can be written to the scratch directory for the commands of
the same page to use: ``<!-- check: file test_convert.py -->``.

Runs are cached by (command, directory, environment), so a page that shows several excerpts of
one run runs it once. Durations (``in 1.23s``) are compared as ``in N.NNs``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The pages whose blocks are checked (``docs/index.md`` is the README, generated).
PAGES = ("README.md", "docs/*.md")
SKIP = ("docs/index.md",)
OUTPUT_LANGUAGES = ("", "console", "text")
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<lang>[\w+-]*)[^\n]*$")
_MARK = re.compile(r"^\s*<!--\s*check:\s*(?P<what>\w+)(?P<args>.*?)-->\s*$")
_DURATION = re.compile(r"\bin \d+(?:\.\d+)?s\b")
TIMEOUT = 600


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, with the check marker before it (if any)."""

    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    mark: str = ""  # "run", "example", "file" or ""
    args: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class Step:
    """One ``$ command`` of a transcript and the output lines shown after it."""

    command: str
    expected: tuple[str, ...]


def blocks(page: str, text: str) -> list[Block]:
    """The fenced blocks of a Markdown page, each with the marker comment just before it."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m.group("fence"), i
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = "\n".join(line[len(m.group("indent")):] for line in lines[start + 1:j])
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = _MARK.match(lines[k]) if k >= 0 else None
        what, args = (mark.group("what"), tuple(shlex.split(mark.group("args")))) if mark else ("", ())
        out.append(Block(page, start + 1, m.group("lang"), body, what, args))
        i = j + 1
    return out


def steps(block: Block) -> list[Step]:
    """The commands of a transcript block and the output shown after each."""
    out: list[Step] = []
    command: str | None = None
    expected: list[str] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            if command is not None:
                out.append(Step(command, tuple(expected)))
            command, expected = line[2:].strip(), []
        elif command is not None:
            expected.append(line)
    if command is not None:
        out.append(Step(command, tuple(expected)))
    return out


#: ``file.py:123``: a source line number (the model's error-path excerpts show them), which any
#: edit above it shifts; the check compares the file and the rest of the line.
_SOURCE_LINE = re.compile(r"(\.py):\d+\b")


def _norm(line: str) -> str:
    return _SOURCE_LINE.sub(r"\1:N", _DURATION.sub("in N.NNs", line.rstrip()))


def mismatch(expected: Sequence[str], actual: str) -> str | None:
    """None when every shown line was printed, in the order shown (``...`` lines mark the
    gaps for the reader); otherwise the first shown line that was not, and where the output
    had its nearest line."""
    out = [_norm(line) for line in actual.splitlines()]
    pos = 0
    for line in expected:
        want = _norm(line)
        if want.strip() in ("...", ""):
            continue
        found = next((i for i in range(pos, len(out)) if out[i] == want), None)
        if found is None:
            return _explain(want, out, pos)
        pos = found + 1
    return None


def _explain(want: str, out: Sequence[str], pos: int) -> str:
    """The shown line that is missing, and the printed line most like it."""
    import difflib

    after = [line for line in out[pos:] if line.strip()]
    close = difflib.get_close_matches(want, after, n=1, cutoff=0.5)
    earlier = " (printed, but before the line shown above it)" if want in out[:pos] else ""
    if close:
        return f"shown:   {want!r}{earlier}\n      printed: {close[0]!r}"
    return f"shown line not in the output: {want!r}{earlier}"


@dataclass
class Runner:
    """Runs commands for the check, once per (command, directory, environment)."""

    cache: dict[tuple[str, str, tuple[str, ...]], tuple[int, str]] = field(default_factory=dict)

    def run(self, command: str, cwd: Path, env: Sequence[str]) -> tuple[int, str]:
        key = (command, str(cwd), tuple(env))
        if key not in self.cache:
            bindir = str(Path(sys.executable).parent)
            environ = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
                       "COLUMNS": "80", "PY_COLORS": "0", "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"}
            for item in ("GMEM_SEED", "GMEM_FAULTS", "GMEM_REVISION", "GMEM_REPORT", "PYTEST_ADDOPTS"):
                environ.pop(item, None)
            environ.update(dict(e.split("=", 1) for e in env))
            done = subprocess.run(["bash", "-c", command], cwd=cwd, env=environ, capture_output=True, text=True,
                                  timeout=TIMEOUT, check=False)
            self.cache[key] = (done.returncode, done.stdout + done.stderr)
        return self.cache[key]


def check_page(page: str, text: str, runner: Runner) -> tuple[list[str], int]:
    """The problems of one page, and how many shown commands were run."""
    problems, ran = [], 0
    with tempfile.TemporaryDirectory(prefix="gmem-docs-") as scratch:
        for b in blocks(page, text):
            if b.mark == "file":
                if not b.args:
                    problems.append(f"{b.where}: 'check: file' needs a file name")
                    continue
                target = Path(scratch, b.args[0])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(b.text + "\n", encoding="utf-8")
            elif b.mark == "run":
                options = dict(a.split("=", 1) for a in b.args if "=" in a and not a.startswith("env="))
                env = [a[4:] for a in b.args if a.startswith("env=")]
                cwd = Path(scratch) if options.get("in") == "scratch" else ROOT
                shown = steps(b)
                if not shown:
                    problems.append(f"{b.where}: 'check: run' block without a '$ command' line")
                for step in shown:
                    _, output = runner.run(step.command, cwd, env)
                    ran += 1
                    why = mismatch(step.expected, output)
                    if why is not None:
                        problems.append(f"{b.where}: `{step.command}` printed something else:\n      {why}")
            elif b.mark == "example":
                continue
            elif b.mark:
                problems.append(f"{b.where}: unknown check marker {b.mark!r} (run, example or file)")
            elif b.lang in OUTPUT_LANGUAGES:
                problems.append(f"{b.where}: a block showing output has no check marker: put "
                                "'<!-- check: run -->' (with '$ command' lines) or '<!-- check: example -->' before it")
    return problems, ran


def pages(root: Path = ROOT) -> list[Path]:
    found = sorted({p for pattern in PAGES for p in root.glob(pattern)})
    return [p for p in found if p.relative_to(root).as_posix() not in SKIP]


def main(argv: Sequence[str] = ()) -> int:
    """Check the given pages (default: README.md and docs/*.md); exit 1 on any problem."""
    files = [Path(a).resolve() for a in argv] or pages()
    runner, problems, ran = Runner(), [], 0
    for path in files:
        page = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        found, n = check_page(page, path.read_text(encoding="utf-8"), runner)
        problems += found
        ran += n
    for p in problems:
        print(f"docs-check: {p}", file=sys.stderr)
    print(f"docs-check: {len(files)} pages, {ran} shown commands run ({len(runner.cache)} distinct), "
          f"{len(problems)} problems")
    return 1 if problems else 0
