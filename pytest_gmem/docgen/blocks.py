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

A ``python`` block is an example, and every example is run. It must say how, unless it is a
``file`` for the page's commands:

``<!-- check: python -->``
    a script: run with ``python`` in the page's scratch directory; it must exit 0.
``<!-- check: pytest [outcome=TEXT] [ARG ...] -->``
    a test module: run with ``python -m pytest -p no:cacheprovider FILE ARG...``; it must exit 0
    with at least one test passed, or, with ``outcome=``, end with a summary line containing TEXT
    (``outcome="1 failed"``: a block that shows a failure).
``<!-- check: same PATH -->``
    an excerpt of a file that CI runs (``examples/``, ``tests/``): its lines must be lines of PATH,
    in the order shown (``...`` lines mark gaps).

A marker comment can span several lines; the lines after its first are run before the block
without being shown (the imports and fixtures an excerpt leaves out), as rustdoc's hidden lines,
and those after a ``<block>`` line run after it (the checks of what its comments claim):

    <!-- check: python
    from pytest_gmem import Host
    gmem = Host().create_vm().create_guest_memfd(size="2M", mmap=True)
    <block>
    assert gmem.ranges() == [(0, 2 << 20, "private")]
    -->

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The pages whose blocks are checked (``docs/index.md`` is the README, generated).
PAGES = ("README.md", "docs/*.md")
SKIP = ("docs/index.md",)
OUTPUT_LANGUAGES = ("", "console", "text")
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<lang>[\w+-]*)[^\n]*$")
_MARK = re.compile(r"^\s*<!--\s*check:\s*(?P<what>\w+)(?P<args>.*?)-->\s*$")
#: In a marker's hidden lines, the line where the block goes (the lines after it run after it).
BLOCK = "<block>"
_DURATION = re.compile(r"\bin \d+(?:\.\d+)?s\b")
TIMEOUT = 600


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, with the check marker before it (if any)."""

    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    mark: str = ""  # "run", "example", "file", "python", "pytest", "same" or ""
    args: tuple[str, ...] = ()
    hidden: str = ""  # the marker comment's further lines: run before the block, not shown

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
        what, args, hidden = _marker(lines, k)
        out.append(Block(page, start + 1, m.group("lang"), body, what, args, hidden))
        i = j + 1
    return out


def _marker(lines: Sequence[str], k: int) -> tuple[str, tuple[str, ...], str]:
    """The check marker ending on line ``k`` (one line, or a comment whose first line names the
    check and whose further lines are hidden code), as (what, args, hidden)."""
    if k < 0:
        return "", (), ""
    mark = _MARK.match(lines[k])
    hidden: list[str] = []
    if mark is None and lines[k].strip() == "-->":
        first = k - 1
        while first >= 0 and not lines[first].lstrip().startswith("<!--"):
            first -= 1
        mark = _MARK.match(lines[first] + " -->") if first >= 0 else None
        indent = len(lines[first]) - len(lines[first].lstrip()) if first >= 0 else 0
        hidden = [line[indent:] if line[:indent].isspace() else line for line in lines[first + 1:k]]
    if mark is None:
        return "", (), ""
    hidden_text = "\n".join(hidden) + "\n" if hidden else ""
    return mark.group("what"), tuple(shlex.split(mark.group("args"))), hidden_text


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


def _source(b: Block, scratch: Path, prefix: str) -> str:
    """Write the block (its hidden lines first) to the scratch directory; the file's name."""
    stem = re.sub(r"\W", "_", Path(b.page).stem)
    name = f"{prefix}{stem}_{b.line}.py"
    before, mark, after = b.hidden.partition(f"{BLOCK}\n")
    if not mark:
        before, after = b.hidden, ""
    (scratch / name).write_text(before + b.text + "\n" + after, encoding="utf-8")
    return name


def _tail(output: str, lines: int = 12) -> str:
    shown = output.rstrip().splitlines()[-lines:]
    return "\n".join(f"      | {line}" for line in shown)


def _run_python(b: Block, scratch: Path, runner: Runner) -> str | None:
    """``check: python``: the block runs as a script and exits 0."""
    name = _source(b, scratch, "doc_")
    status, output = runner.run(f"{shlex.quote(sys.executable)} {name}", scratch, ())
    return None if status == 0 else f"exited with status {status}:\n{_tail(output)}"


_SUMMARY = re.compile(r"^=+ (?P<text>.*) in [\d.]+s.* =+$", re.M)


def _run_pytest(b: Block, scratch: Path, runner: Runner) -> str | None:
    """``check: pytest``: the block runs as a test module; exit 0 with a test passed, or the
    summary line ``outcome=`` names."""
    name = _source(b, scratch, "test_doc_")
    outcome = next((a[len("outcome="):] for a in b.args if a.startswith("outcome=")), None)
    extra = [a for a in b.args if not a.startswith("outcome=")]
    command = shlex.join([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", name, *extra])
    status, output = runner.run(command, scratch, ())
    found = _SUMMARY.findall(output)
    summary = found[-1] if found else ""
    if outcome is not None:
        if outcome in summary:
            return None
        return f"should end with {outcome!r}, ended with {summary or 'no summary'!r}:\n{_tail(output)}"
    if status == 0 and re.search(r"\b[1-9]\d* passed", summary):
        return None
    return f"did not pass (exit {status}, {summary or 'no summary'!r}):\n{_tail(output)}"


def _spaced(text: str) -> list[str]:
    """The lines of ``text`` with runs of spaces made one (the docs may align comments differently)."""
    return [" ".join(line.split()) for line in text.splitlines()]


def _same(b: Block, scratch: Path, runner: Runner) -> str | None:
    """``check: same PATH``: the block's lines are lines of PATH (which CI runs), in order."""
    if not b.args:
        return "needs the file it is an excerpt of ('check: same examples/test_x.py')"
    path = ROOT / b.args[0]
    if not path.is_file():
        return f"is an excerpt of {b.args[0]!r}, which does not exist"
    why = mismatch(_spaced(b.text), "\n".join(_spaced(path.read_text(encoding="utf-8"))))
    return None if why is None else f"is not an excerpt of {b.args[0]}:\n      {why}"


#: How each kind of Python example is run: a problem, or None.
RUNNERS: dict[str, Callable[[Block, Path, Runner], str | None]] = {
    "python": _run_python, "pytest": _run_pytest, "same": _same,
}


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
            elif b.mark in RUNNERS:
                why = RUNNERS[b.mark](b, Path(scratch), runner)
                ran += 1
                if why is not None:
                    problems.append(f"{b.where}: the {b.mark} example {why}")
            elif b.mark == "example" and b.lang == "python":
                problems.append(f"{b.where}: a Python example is run, not only shown: put "
                                "'check: python', 'check: pytest' or 'check: same PATH' before it")
            elif b.mark == "example":
                continue
            elif b.mark:
                problems.append(f"{b.where}: unknown check marker {b.mark!r} "
                                "(run, example, file, python, pytest or same)")
            elif b.lang == "python":
                problems.append(f"{b.where}: a Python example has no check marker: put '<!-- check: python -->', "
                                "'<!-- check: pytest -->' or '<!-- check: same PATH -->' before it")
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
