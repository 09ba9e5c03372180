"""Error-path coverage of the guest_memfd model (pytest-free).

Two halves:

* :func:`find_branches` reads ``pytest_gmem/model/*.py`` with :mod:`ast` and lists the model's
  own error-handling branches, each as a :class:`Branch` (file, entry line, enclosing function,
  kind). What counts (see docs/error-paths.md):

  - ``except`` handlers (entry: the handler's first statement);
  - fault branches, ``if f is not None:`` where ``f`` came from a fault point's ``hit()`` /
    ``hit_many()`` (a body that only calls ``note_fault`` is bookkeeping and is skipped);
  - ``if``/``else`` bodies that directly raise ``ConversionError``, ``ConvFailure``,
    ``KernelBug``, ``GuestFault``, ``SigBus``, ``UnacceptedAccess``, ``oserror(...)``,
    ``_fail(...)``, ``_sigbus(...)`` (or re-raise) or call ``host.warn(...)``;
  - rollbacks: the statements after a success guard (``if failure is None: return``,
    ``if add_folio(...): return``) when they undo work with a ``"rollback"`` phase;
  - every other such ``raise`` and ``host.warn(...)`` that is not the straight-line
    continuation of a branch above (a nested, separately reachable sink).

  Kinds: ``KernelBug`` (raises KernelBug), ``WARN`` (a WARN_ON record), ``rollback`` (undoes
  work: the rollback after a success guard, or an ``except`` that gives back what it took,
  uncharge/free/release/re-add..., before raising),
  ``errno`` (an error returned to the caller), ``fault`` (an injected condition applied
  without failing: extra references, a silent HVO failure, a short allocation).

* :func:`build_report` joins the branches with coverage.py line data carrying dynamic contexts
  (see :mod:`pytest_gmem.coverage_ctx`): for each branch the faults whose context reached it,
  the tests that reached it without a fault, and the branches nothing reached.

``python -m pytest_gmem.errorpaths [.coverage] [--json PATH]`` reports from an existing data
file (for example one pytest-cov wrote with ``--cov=pytest_gmem --cov-context=test``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .coverage_ctx import is_census_context, split_fault_context

KINDS = ("errno", "rollback", "WARN", "KernelBug", "fault")
SINK_CLASSES = frozenset({"ConversionError", "ConvFailure", "KernelBug", "GuestFault", "SigBus", "UnacceptedAccess"})
SINK_CALLS = frozenset({"oserror", "_fail", "_sigbus"})
HIT_METHODS = frozenset({"hit", "hit_many"})
MODEL_PACKAGE = ("pytest_gmem", "model")

#: JSON-able coverage extract: display file -> line (as a string) -> contexts that ran it
LineContexts = dict[str, dict[str, list[str]]]


def model_dir() -> Path:
    """The directory of the installed model package (found without importing it)."""
    return Path(__file__).resolve().parent / "model"


def display_path(path: str | os.PathLike[str]) -> str | None:
    """``pytest_gmem/model/x.py`` for any path ending so (a checkout, site-packages), else None."""
    parts = Path(os.fspath(path).replace("\\", "/")).parts
    if len(parts) >= 3 and tuple(parts[-3:-1]) == MODEL_PACKAGE and parts[-1].endswith(".py"):
        return "/".join(parts[-3:])
    return None


@dataclass(frozen=True)
class Branch:
    """One error-handling branch: reached when any line of ``lines`` (its entry statement) ran."""

    file: str  # pytest_gmem/model/conversion.py
    line: int
    last_line: int
    function: str
    kind: str
    what: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def lines(self) -> range:
        return range(self.line, self.last_line + 1)


# --- the static finder ---------------------------------------------------------------------------
def _callee(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Name):
            return f.id
        if isinstance(f, ast.Attribute):
            return f.attr
    return None


def _short(node: ast.AST, limit: int = 48) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sink(stmt: ast.stmt) -> tuple[str, str] | None:
    """(kind, description) when ``stmt`` is an error raise or a ``host.warn(...)`` call."""
    if isinstance(stmt, ast.Raise):
        exc = stmt.exc
        if exc is None:
            return "errno", "raise (re-raise)"
        if isinstance(exc, ast.Name) and not exc.id[:1].isupper():
            return "errno", f"raise {exc.id}"
        name = _callee(exc)
        if name in SINK_CLASSES or name in SINK_CALLS:
            assert isinstance(exc, ast.Call)
            arg = _short(exc.args[0], 40) if exc.args else ""
            return ("KernelBug" if name == "KernelBug" else "errno"), f"raise {name}({arg})"
        return None
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        f = call.func
        if isinstance(f, ast.Attribute) and f.attr == "warn" and "host" in ast.unparse(f.value).split("."):
            where = call.args[0] if call.args else None
            label = where.value if isinstance(where, ast.Constant) and isinstance(where.value, str) else (
                _short(where, 30) if where is not None else "")
            return "WARN", f"WARN {label}"
    return None


def _entry_lines(stmt: ast.stmt) -> tuple[int, int]:
    """The lines that run when ``stmt`` is entered (a compound statement's header)."""
    if isinstance(stmt, ast.Try) and stmt.body:
        return _entry_lines(stmt.body[0])
    if isinstance(stmt, (ast.If, ast.While)):
        return stmt.lineno, stmt.test.end_lineno or stmt.lineno
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        return stmt.lineno, stmt.iter.end_lineno or stmt.lineno
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return stmt.lineno, stmt.items[-1].context_expr.end_lineno or stmt.lineno
    return stmt.lineno, stmt.end_lineno or stmt.lineno


def _mentions_rollback(stmts: Sequence[ast.stmt]) -> bool:
    return any(
        isinstance(n, ast.Constant) and n.value == "rollback" for s in stmts for n in ast.walk(s)
    )


def _is_guard_return(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.If)
        and not stmt.orelse
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], ast.Return)
        and (stmt.body[0].value is None or isinstance(stmt.body[0].value, ast.Constant))
    )


UNDO_PREFIXES = ("un", "free", "release", "put", "remove", "drop", "restore", "_readd", "rollback")


def _undoes(stmts: Sequence[ast.stmt]) -> bool:
    """Do ``stmts`` call something that gives back what was taken (uncharge, free, release...)?"""
    return any(
        (name := _callee(n)) is not None and name.startswith(UNDO_PREFIXES)
        for s in stmts
        for n in ast.walk(s)
        if isinstance(n, ast.Call)
    )


def _only_bookkeeping(stmts: Sequence[ast.stmt]) -> bool:
    return all(
        isinstance(s, ast.Expr) and _callee(s.value) == "note_fault" for s in stmts
    )


class _FunctionScanner:
    def __init__(self, file: str, function: str, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.file = file
        self.function = function
        self.found: list[Branch] = []
        self.hit_names = {
            t.id
            for n in ast.walk(fn)
            for t, v in _bindings(n)
            if isinstance(t, ast.Name) and _callee(v) in HIT_METHODS
        }

    def _fault_check(self, test: ast.expr) -> bool:
        for n in ast.walk(test):
            if (
                isinstance(n, ast.Compare)
                and len(n.ops) == 1
                and isinstance(n.ops[0], ast.IsNot)
                and isinstance(n.comparators[0], ast.Constant)
                and n.comparators[0].value is None
            ):
                left = n.left.target if isinstance(n.left, ast.NamedExpr) else n.left
                if isinstance(left, ast.Name) and left.id in self.hit_names:
                    return True
        return False

    def add(self, stmts: Sequence[ast.stmt], kind: str, what: str) -> None:
        first, last = _entry_lines(stmts[0])
        self.found.append(Branch(self.file, first, last, self.function, kind, what))

    def region(self, stmts: Sequence[ast.stmt], origin: str, what: str) -> None:
        """A branch whose body is ``stmts``: classify by its straight-line statements."""
        sinks = [s for s in (_sink(st) for st in stmts) if s is not None]
        kinds = {k for k, _ in sinks}
        undo_then_raise = bool(stmts) and isinstance(stmts[-1], ast.Raise) and _undoes(stmts[:-1])
        if "KernelBug" in kinds:
            kind = "KernelBug"
        elif "WARN" in kinds:
            kind = "WARN"
        elif origin == "rollback" or (origin == "except" and undo_then_raise):
            kind = "rollback"
        elif sinks or origin == "except":
            kind = "errno"
        else:
            kind = "fault"
        detail = "; ".join(d for _, d in sinks)
        self.add(stmts, kind, what + (f" -> {detail}" if detail else ""))
        self.block(stmts, in_region=True)

    def block(self, stmts: Sequence[ast.stmt], in_region: bool = False) -> None:
        for i, st in enumerate(stmts):
            rest = stmts[i + 1:]
            if _is_guard_return(st) and rest and _mentions_rollback(rest[:1]):
                assert isinstance(st, ast.If)
                self.statement(st, in_region)
                self.region(rest, "rollback", f"rollback after `if {_short(st.test, 36)}: return`")
                return
            self.statement(st, in_region)

    def statement(self, st: ast.stmt, in_region: bool) -> None:
        sink = _sink(st)
        if sink is not None:
            if not in_region:
                self.add([st], sink[0], sink[1])
            return
        if isinstance(st, ast.If):
            if self._fault_check(st.test) and not _only_bookkeeping(st.body):
                self.region(st.body, "fault", f"if {_short(st.test)}")
            elif any(_sink(s) for s in st.body):
                self.region(st.body, "if", f"if {_short(st.test)}")
            else:
                self.block(st.body)
            if len(st.orelse) == 1 and isinstance(st.orelse[0], ast.If):
                self.statement(st.orelse[0], in_region=False)  # elif
            elif st.orelse and any(_sink(s) for s in st.orelse):
                self.region(st.orelse, "if", f"else of `if {_short(st.test, 36)}`")
            else:
                self.block(st.orelse)
        elif isinstance(st, ast.Try):
            self.block(st.body)
            for h in st.handlers:
                caught = _short(h.type, 36) if h.type is not None else "(anything)"
                self.region(h.body, "except", f"except {caught}")
            self.block(st.orelse)
            self.block(st.finalbody)
        elif isinstance(st, (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
            self.block(st.body)
            self.block(getattr(st, "orelse", []))
        # nested functions and classes are scanned on their own by find_branches


def _bindings(node: ast.AST) -> Iterator[tuple[ast.expr, ast.expr]]:
    if isinstance(node, ast.Assign):
        for t in node.targets:
            yield t, node.value
    elif isinstance(node, ast.NamedExpr):
        yield node.target, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        yield node.target, node.value


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    def walk(body: Iterable[ast.stmt], prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for st in body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + st.name, st
                yield from walk(st.body, f"{prefix}{st.name}.")
            elif isinstance(st, ast.ClassDef):
                yield from walk(st.body, f"{prefix}{st.name}.")

    yield from walk(tree.body, "")


def find_branches_in_source(source: str, file: str) -> list[Branch]:
    """The error-handling branches of one module's source (``file``: its display path)."""
    tree = ast.parse(source, filename=file)
    found: list[Branch] = []
    for name, fn in _functions(tree):
        scanner = _FunctionScanner(file, name, fn)
        scanner.block([s for s in fn.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                 ast.ClassDef))])
        found.extend(scanner.found)
    unique: dict[int, Branch] = {}
    for b in found:
        unique.setdefault(b.line, b)
    return sorted(unique.values(), key=lambda b: b.line)


def find_branches(directory: Path | None = None) -> list[Branch]:
    """The error-handling branches of every ``pytest_gmem/model/*.py``."""
    directory = directory or model_dir()
    branches: list[Branch] = []
    for path in sorted(directory.glob("*.py")):
        shown = display_path(path) or path.name
        branches.extend(find_branches_in_source(path.read_text(encoding="utf-8"), shown))
    return branches


# --- coverage data --------------------------------------------------------------------------------
def extract(data: Any, branches: Sequence[Branch]) -> LineContexts:
    """From a ``coverage.CoverageData``: the contexts of the lines that matter to ``branches``
    (small and JSON-able, so that xdist workers can send it to the controller)."""
    wanted: dict[str, set[int]] = {}
    for b in branches:
        wanted.setdefault(b.file, set()).update(b.lines)
    out: LineContexts = {}
    for measured in sorted(data.measured_files()):
        shown = display_path(measured)
        if shown is None or shown not in wanted:
            continue
        per_line = out.setdefault(shown, {})
        for line, contexts in (data.contexts_by_lineno(measured) or {}).items():
            if line in wanted[shown]:
                merged = set(per_line.get(str(line), ())) | set(contexts)
                per_line[str(line)] = sorted(merged)
    return out


def merge(into: LineContexts, more: Mapping[str, Mapping[str, Sequence[str]]]) -> LineContexts:
    """Union of two extracts (the controller merges its workers')."""
    for file, lines in more.items():
        mine = into.setdefault(file, {})
        for line, contexts in lines.items():
            mine[line] = sorted(set(mine.get(line, ())) | set(contexts))
    return into


def read_data_file(path: str | os.PathLike[str]) -> Any:
    """A ``CoverageData`` read from ``path`` (a ``.coverage`` file)."""
    from coverage import CoverageData

    if not Path(path).is_file():
        raise FileNotFoundError(f"no coverage data file {os.fspath(path)!r}")
    data = CoverageData(basename=os.fspath(path))
    data.read()
    return data


class Measurement:
    """The plugin's own in-process measurement of the model (when no coverage is running):
    line data with dynamic contexts, in memory only (no data file)."""

    def __init__(self, directory: Path | None = None) -> None:
        import coverage

        self.cov = coverage.Coverage(
            data_file=None, config_file=False, include=[str((directory or model_dir()) / "*.py")]
        )
        try:  # sysmon (the default from Python 3.14) cannot switch dynamic contexts
            from coverage.tracer import CTracer  # noqa: F401

            self.cov.set_option("run:core", "ctrace")
        except ImportError:  # pragma: no cover - a pure-Python coverage build
            self.cov.set_option("run:core", "pytrace")
        self.cov.start()
        self.running = True

    def stop(self) -> Any:
        """Stop measuring; the ``CoverageData``."""
        if self.running:
            self.running = False
            self.cov.stop()
        return self.cov.get_data()


# --- the report -----------------------------------------------------------------------------------
@dataclass
class Reached:
    """What reached one branch."""

    branch: Branch
    faults: dict[str, set[str]] = field(default_factory=dict)  # fault label(s) -> test ids
    plain: set[str] = field(default_factory=set)  # contexts without a fault

    @property
    def status(self) -> str:
        if self.faults and not self.plain:
            return "fault-only"
        if self.faults:
            return "fault+plain"
        if self.plain:
            return "plain-only"
        return "never"

    def as_json(self) -> dict[str, Any]:
        b = self.branch
        return {
            "file": b.file,
            "line": b.line,
            "lines": [b.line, b.last_line],
            "function": b.function,
            "kind": b.kind,
            "what": b.what,
            "status": self.status,
            "faults": {label: sorted(tests) for label, tests in sorted(self.faults.items())},
            "contexts_without_fault": sorted(self.plain),
        }


def reach(branches: Sequence[Branch], lines: Mapping[str, Mapping[str, Sequence[str]]]) -> list[Reached]:
    """Join branches with an extract: which contexts ran each branch's entry lines."""
    out: list[Reached] = []
    for b in branches:
        r = Reached(b)
        per_line = lines.get(b.file, {})
        for line in b.lines:
            for context in per_line.get(str(line), ()):
                if is_census_context(context):  # a sweep's census run repeats a test or a sweep item
                    continue
                parsed = split_fault_context(context)
                if parsed is None:
                    r.plain.add(context)
                    continue
                test, labels = parsed
                r.faults.setdefault("+".join(labels), set()).add(test.rsplit("|", 1)[0])
        out.append(r)
    return out


def build_report(
    branches: Sequence[Branch], lines: Mapping[str, Mapping[str, Sequence[str]]], source: str
) -> dict[str, Any]:
    """The JSON report: a summary and one entry per branch."""
    rows = reach(branches, lines)
    status = {s: sum(1 for r in rows if r.status == s) for s in ("fault-only", "fault+plain", "plain-only", "never")}
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        k = by_kind.setdefault(r.branch.kind, {"branches": 0, "reached": 0, "fault_only": 0})
        k["branches"] += 1
        k["reached"] += r.status != "never"
        k["fault_only"] += r.status == "fault-only"
    labels = sorted({label for r in rows for label in r.faults})
    return {
        "source": source,
        "measured_files": sorted(lines),
        "summary": {
            "branches": len(rows),
            "reached": len(rows) - status["never"],
            "fault_only": status["fault-only"],
            "fault_and_plain": status["fault+plain"],
            "plain_only": status["plain-only"],
            "never": status["never"],
            "by_kind": {k: by_kind[k] for k in KINDS if k in by_kind},
            "faults_seen": len(labels),
        },
        "branches": [r.as_json() for r in rows],
    }


def _faults_text(faults: Mapping[str, Sequence[str]], width: int = 2) -> str:
    labels = sorted(faults, key=lambda lab: (-len(faults[lab]), lab))
    shown = ", ".join(labels[:width])
    return shown + (f" (+{len(labels) - width} more)" if len(labels) > width else "")


def report_lines(report: Mapping[str, Any], verbose: bool = False) -> list[str]:
    """The terminal section: reached branches (fault-only ones first), then the never reached."""
    s = report["summary"]
    rows: list[Mapping[str, Any]] = report["branches"]
    lines: list[str] = []
    if not report["measured_files"]:
        lines.append(f"no coverage data for pytest_gmem/model in {report['source']} (was the model measured?)")
    order = {"fault-only": 0, "fault+plain": 1, "plain-only": 2}
    reached = sorted((r for r in rows if r["status"] != "never"),
                     key=lambda r: (order[r["status"]], r["file"], r["line"]))
    if not verbose:
        reached = [r for r in reached if r["status"] != "plain-only"]
    fmt = "{:<36} {:<38} {:<9} {:<11} {}"
    lines.append(fmt.format("branch", "function", "kind", "reached", "by fault (tests)"))
    for r in reached:
        where = f"{r['file'].rsplit('/', 1)[-1]}:{r['line']}"
        by = _faults_text(r["faults"]) if r["faults"] else f"no fault ({len(r['contexts_without_fault'])} contexts)"
        lines.append(fmt.format(where, r["function"][:38], r["kind"], r["status"], by))
    never = [r for r in rows if r["status"] == "never"]
    if never:
        lines.append(f"never reached ({len(never)}):")
        for r in never:
            where = f"{r['file'].rsplit('/', 1)[-1]}:{r['line']}"
            lines.append(f"  {where:<34} {r['function'][:38]:<38} {r['kind']:<9} {r['what']}")
    kinds = ", ".join(f"{k} {v['reached']}/{v['branches']}" for k, v in s["by_kind"].items())
    hidden = "" if verbose or not s["plain_only"] else " (listed with -v)"
    lines.append(
        f"gmem: {s['branches']} error-handling branches in pytest_gmem/model, {s['reached']} reached: "
        f"{s['fault_only']} only under an injected fault, {s['fault_and_plain']} with and without one, "
        f"{s['plain_only']} only without one{hidden}; {s['never']} never reached. By kind (reached/all): {kinds}"
    )
    return lines


def write_json(report: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the report; its directory must exist (``OSError`` otherwise)."""
    Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def report_from_data_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    branches = find_branches()
    return build_report(branches, extract(read_data_file(path), branches), os.fspath(path))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_gmem.errorpaths",
        description="Error-path coverage of the guest_memfd model from a coverage.py data file "
        "(measured with fault contexts: pytest --cov=pytest_gmem --cov-context=test).",
    )
    parser.add_argument("data_file", nargs="?", default=".coverage", help="coverage data file (default: .coverage)")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report to PATH")
    parser.add_argument("-v", "--verbose", action="store_true", help="list branches reached only without a fault")
    parser.add_argument("--list", action="store_true", help="only list the branches found (no coverage data)")
    args = parser.parse_args(argv)
    if args.list:
        for b in find_branches():
            print(f"{b.where:<40} {b.function:<40} {b.kind:<9} {b.what}")
        return 0
    try:
        report = report_from_data_file(args.data_file)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report_lines(report, verbose=args.verbose):
        print(line)
    if args.json:
        try:
            write_json(report, args.json)
        except OSError as exc:
            print(f"error: cannot write the JSON report to {args.json!r}: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
