"""Fault sweeps: one scenario per reachable (point, kind, nth), found by a census run.

Pytest-free. The technique is the kernel's fail-nth and syzkaller's fault-injection job: run
the code once with nothing armed and count every fault point's hits (the *census*); then run it
once per hit ``k`` of each point, with only that hit failing, and classify what happened. With
``depth=2`` each scenario whose first fault made the code roll back is extended with a second
fault on the k-th hit of the rollback phase (``when={"phase": "rollback"}``).

Two users:

* the pytest plugin (``@pytest.mark.fault_sweep``, ``--gmem-sweep``, ``--gmem-compare``) turns
  every :class:`Scenario` into its own test item (see docs/sweeps.md) and classifies it with
  :func:`classify`;
* :func:`run_sweep` sweeps a ``setup`` + ``op`` pair directly, without pytest, resuming every
  scenario from a deep copy of the state ``setup`` built (``benchmarks/bench_sweep.py``).

Outcomes (:data:`OUTCOMES`), in the order :func:`classify` checks them:
``kernel-bug`` (KernelBug raised), ``invariant`` (``host.check()`` failed), ``warn`` (a WARN not
allowed), ``failed`` (the test's own assertions failed, in its body or in a fixture's setup or
teardown), ``skipped`` (the body called ``pytest.skip`` or ``pytest.xfail``), ``not-fired`` (the
fault never fired), ``clean`` (it fired and an error reached the caller, all checks passed),
``success`` (it fired, the operation succeeded anyway, all checks passed).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faults

OUTCOMES = ("clean", "success", "warn", "invariant", "kernel-bug", "not-fired", "failed", "skipped")
#: Outcomes that pass in a plain sweep; every other outcome fails the item unless expected
#: (a ``skipped`` item is reported as skipped by pytest itself).
PASSING = frozenset({"clean", "success"})
#: The phase whose hits a depth-2 sweep fails a second time.
ROLLBACK = "rollback"

COMPARE_HELP = (
    "Design comparison: run every swept test (fault_sweep marker, or every model test with "
    "--gmem-sweep) under each of these revisions, comma-separated ('all': every revision); "
    "sweep outcomes are data (WARN, invariant, KernelBug items are reported as xfail, not "
    "failures) and the terminal prints the per-revision table, also written as SVG and HTML "
    "next to --gmem-report. Default: off."
)
SWEEP_DEPTH_HELP = (
    "Depth of --gmem-sweep and of fault_sweep markers without depth=: 1 (one fault per "
    "scenario) or 2 (plus a second fault in the rollback phase). Default: 1."
)
MARKER_HELP = (
    "fault_sweep(points='*', kinds=('ENOMEM',), max_nth=None, depth=1, expect=()): run the test "
    "once per reachable (point, kind, nth), each its own item test_x[sweep-POINT-KIND-NTH]; "
    "points: glob(s); kinds: in the fault grammar, e.g. 'speculative_refcount(hold=3)'; "
    "max_nth caps nth per point; depth=2 adds a second fault in the rollback phase; expect: "
    "outcomes reported as xfail instead of failures (e.g. ('warn',)); see docs/sweeps.md."
)


class SweepError(ValueError):
    """A bad fault_sweep argument; the message names the value and where it came from."""


# --- kinds: parsing and compact labels --------------------------------------------------------
def parse_kind(text: str | faults.Kind, where: str = "fault_sweep") -> faults.Kind:
    """A kind object from its text-grammar form (``"ENOMEM"``, ``"speculative_refcount(hold=3)"``,
    ``"speculative_refcount(hold=none)"``, ``"tdx_error(fatal)"``)."""
    if isinstance(text, faults.Kind):
        return text
    if not isinstance(text, str) or not text.strip():
        raise SweepError(f"{where}: a kind must be a string in the fault grammar, got {text!r}")
    try:
        specs = faults.parse(f"sweep={text.strip()}", source=where)
    except (faults.FaultError, ValueError, TypeError) as exc:
        raise SweepError(f"{where}: invalid kind {text!r}: {exc}") from None
    if len(specs) != 1 or len(specs[0].terms) != 1 or specs[0].rule is not None or specs[0].terms[0].count:
        raise SweepError(f"{where}: {text!r} is not a single fault kind")
    kind = specs[0].kind
    if isinstance(kind, faults.Off):
        raise SweepError(f"{where}: 'off' is not a fault kind to sweep")
    return kind


def kind_label(kind: faults.Kind) -> str:
    """The kind's compact form in an item id: no '-', '[' or spaces (``ENOMEM``,
    ``specref.hold3``, ``specref.forever``, ``specref.x2.hold3``, ``extraref``, ``tdx.busy``)."""
    if isinstance(kind, faults.Errno):
        return kind.code
    if isinstance(kind, faults.SpeculativeRefcount):
        refs = "" if kind.refs == 1 else f".x{kind.refs}"
        hold = ".forever" if kind.hold is None else f".hold{kind.hold}"
        return f"specref{refs}{hold}"
    if isinstance(kind, faults.ExtraRefcount):
        return "extraref" if kind.refs == 1 else f"extraref.x{kind.refs}"
    if isinstance(kind, faults.TdxError):
        code = kind.code.lower().removeprefix("tdx_")
        return "tdx.busy" if code == "operand_busy" else f"tdx.{code}"
    return kind.label().replace("(", ".").replace(")", "").replace(",", ".").replace("=", "")


def kind_args(kind: faults.Kind, where: str = "fault_sweep") -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``(name, keyword arguments)`` that rebuild ``kind`` with :func:`faults.make_kind`."""
    if isinstance(kind, faults.Errno):
        return kind.code, ()
    if isinstance(kind, faults.SpeculativeRefcount):
        return kind.name, (("refs", kind.refs), ("hold", kind.hold))
    if isinstance(kind, faults.ExtraRefcount):
        return kind.name, (("refs", kind.refs),)
    if isinstance(kind, faults.TdxError):
        return kind.name, (("code", kind.code),)
    raise SweepError(f"{where}: cannot sweep kind {kind.label()!r} (a sweep re-arms its kinds by name: "
                     "errno codes, speculative_refcount, extra_refcount, tdx_error)")


# --- scenarios --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepFault:
    """One fault of a scenario: ``kind`` on the ``nth`` hit of ``point`` counted from the start
    of the test body (only hits of ``phase`` count when it is set)."""

    point: str
    kind: faults.Kind
    nth: int
    phase: str | None = None

    def ident(self) -> str:
        base = f"{self.point}-{kind_label(self.kind)}-{self.nth}"
        return f"{self.phase}-{base}" if self.phase else base

    def when(self) -> dict[str, str] | None:
        return {"phase": self.phase} if self.phase else None

    def text(self) -> str:
        """The fault in the text grammar (what ``--gmem-fault`` takes)."""
        from faults.spec import format_kind

        flt = f"[phase={self.phase}]" if self.phase else ""
        return f"{self.point}{flt}={format_kind(self.kind)}@nth={self.nth}"

    def to_json(self) -> dict[str, Any]:
        return {"point": self.point, "kind": self.kind.label(), "label": kind_label(self.kind),
                "nth": self.nth, "phase": self.phase, "text": self.text()}


@dataclass(frozen=True)
class Scenario:
    """What one sweep item carries: its faults (none for a census run) and, in a design
    comparison, the revision it runs under."""

    faults: tuple[SweepFault, ...] = ()
    revision: str | None = None

    @property
    def depth(self) -> int:
        return len(self.faults)

    def ident(self) -> str:
        """The id part of the item name: ``[REV-]sweep-POINT-KIND-NTH[-rollback-POINT-KIND-NTH]``."""
        body = "-".join(["sweep", *(f.ident() for f in self.faults)])
        return f"{self.revision}-{body}" if self.revision else body

    def extend(self, fault: SweepFault) -> Scenario:
        return Scenario((*self.faults, fault), self.revision)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.ident(), "revision": self.revision, "depth": self.depth,
                "faults": [f.to_json() for f in self.faults]}


@dataclass(frozen=True)
class SweepSpec:
    """The arguments of a ``fault_sweep`` marker (or ``--gmem-sweep``'s defaults)."""

    points: tuple[str, ...] = ("*",)
    kinds: tuple[faults.Kind, ...] = (faults.Errno("ENOMEM"),)
    max_nth: int | None = None
    depth: int = 1
    expect: frozenset[str] = frozenset()

    def key(self) -> str:
        return repr((self.points, [k.label() for k in self.kinds], self.max_nth, self.depth))


def sweep_spec(args: Sequence[Any], kwargs: Mapping[str, Any], where: str, default_depth: int = 1) -> SweepSpec:
    """Check a ``fault_sweep`` marker's arguments (``where``: "marker fault_sweep on test_x")."""
    names = ("points", "kinds", "max_nth", "depth", "expect")
    if len(args) > len(names):
        raise SweepError(f"{where}: takes at most {len(names)} positional arguments; signature: {MARKER_HELP}")
    values: dict[str, Any] = dict(zip(names, args, strict=False))
    for k, v in kwargs.items():
        if k not in names:
            import difflib

            close = difflib.get_close_matches(k, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SweepError(f"{where}: unexpected argument {k!r}{hint}; arguments: {', '.join(names)}")
        if k in values:
            raise SweepError(f"{where}: argument {k!r} given twice")
        values[k] = v
    points = values.get("points", "*")
    if not isinstance(points, (str, list, tuple)):
        raise SweepError(f"{where}: points must be a glob or a sequence of globs, got {points!r}")
    points_t = (points,) if isinstance(points, str) else tuple(points)
    if not points_t or not all(isinstance(p, str) and p for p in points_t):
        raise SweepError(f"{where}: points must be a glob or a sequence of globs, got {points!r}")
    for p in points_t:
        try:
            faults.match_points(p, where)
        except faults.FaultError as exc:
            raise SweepError(str(exc)) from None
    kinds = values.get("kinds", ("ENOMEM",))
    if not isinstance(kinds, (str, faults.Kind, list, tuple)):
        raise SweepError(f"{where}: kinds must be a kind or a sequence of kinds in the fault grammar, got {kinds!r}")
    kinds_t = (kinds,) if isinstance(kinds, (str, faults.Kind)) else tuple(kinds)
    if not kinds_t:
        raise SweepError(f"{where}: kinds must name at least one kind")
    parsed: dict[str, faults.Kind] = {}
    for k in kinds_t:
        kind = parse_kind(k, where)
        kind_args(kind, where)  # a kind the sweep can re-arm
        parsed.setdefault(kind_label(kind), kind)  # "ENOMEM" and "enomem" are one kind: one item each nth
    max_nth = values.get("max_nth")
    if max_nth is not None and (isinstance(max_nth, bool) or not isinstance(max_nth, int) or max_nth < 1):
        raise SweepError(f"{where}: max_nth must be an integer >= 1 or None, got {max_nth!r}")
    depth = values.get("depth", default_depth)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in (1, 2):
        raise SweepError(f"{where}: depth must be 1 or 2, got {depth!r}")
    expect = values.get("expect", ())
    if not isinstance(expect, (str, list, tuple, set, frozenset)):
        raise SweepError(f"{where}: expect must be an outcome or a sequence of outcomes, got {expect!r}")
    expect_t = (expect,) if isinstance(expect, str) else tuple(expect)
    if "any" in expect_t:
        expect_t = OUTCOMES
    bad = [e for e in expect_t if not isinstance(e, str) or e not in OUTCOMES]
    if bad:
        raise SweepError(f"{where}: unknown outcome(s) {bad!r} in expect; outcomes: {', '.join(OUTCOMES)}, any")
    return SweepSpec(points_t, tuple(parsed.values()), max_nth, int(depth), frozenset(expect_t))


def _matches(point: str, globs: Iterable[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(point, g) for g in globs)


def plan(spec: SweepSpec, census: Mapping[str, int], base: Scenario, phase: str | None = None) -> list[Scenario]:
    """The scenarios that extend ``base`` by one fault: every point reached (``census``: hits
    per point, of ``phase`` only when given) that the spec selects, every kind the spec asks
    for that the point's allow-list allows, every nth up to the hits (capped by max_nth)."""
    out: list[Scenario] = []
    for point in sorted(census):
        hits = int(census[point])
        if hits <= 0 or not _matches(point, spec.points):
            continue
        try:
            fp = faults.get_point(point)
        except faults.FaultError:
            continue
        for kind in spec.kinds:
            if not fp.allows(kind):
                continue
            last = hits if spec.max_nth is None else min(hits, spec.max_nth)
            out.extend(base.extend(SweepFault(point, kind, nth, phase)) for nth in range(1, last + 1))
    return out


# --- census -----------------------------------------------------------------------------------
@dataclass
class Census:
    """What a census run saw in the test body: hits per point, and per phase per point."""

    hits: dict[str, int] = field(default_factory=dict)
    phase_hits: dict[str, dict[str, int]] = field(default_factory=dict)
    fired: bool = False
    ok: bool = True
    skipped: bool = False  # the run skipped or xfailed (a skip / xfail marker): no items, no warning
    #: the run drew on the session seed (a probabilistic fault, Faker): its hits may depend on
    #: the seed, so the cache keeps it under a key that includes the seed (see :func:`census_keys`)
    seeded: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"hits": self.hits, "phase_hits": self.phase_hits, "fired": self.fired, "ok": self.ok,
                "seeded": self.seeded}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Census:
        return cls(dict(data["hits"]), {k: dict(v) for k, v in data["phase_hits"].items()},
                   bool(data["fired"]), bool(data["ok"]), seeded=bool(data.get("seeded", False)))


class BodyCensus:
    """Counts a recording scope's hits between :meth:`start` (arming) and :meth:`stop` (the end
    of the body), per point and per (phase, point), from the scope's census and trace."""

    def __init__(self, scope: faults.Scope) -> None:
        self.scope = scope
        self._hits: Counter[str] = Counter(scope.census)
        self._trace = len(scope.trace)
        self._dropped = scope.trace_dropped

    def stop(self) -> Census:
        sc = self.scope
        hits = {p: n - self._hits.get(p, 0) for p, n in sc.census.items() if n - self._hits.get(p, 0) > 0}
        phases: dict[str, Counter[str]] = {}
        events = list(sc.trace)
        skip = self._trace - (sc.trace_dropped - self._dropped)
        for ev in events[max(0, skip):]:
            phase = ev.context.get("phase")
            if isinstance(phase, str):
                phases.setdefault(phase, Counter())[ev.point] += ev.count
        return Census(dict(sorted(hits.items())), {ph: dict(sorted(c.items())) for ph, c in sorted(phases.items())})


def census_key(*parts: object) -> str:
    """A stable digest of what a census depends on (node id, sources, revision, faults, ...)."""
    return hashlib.sha1(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:20]


def seeded_key(key: str, seed: int) -> str:
    """The key of a census that drew on the session seed: ``key`` (what decides reachability)
    and the seed. Under ``key`` itself the cache then keeps only a note that says so."""
    return census_key(key, "seed", seed)


#: At most this many censuses stay in the cache (the least recently used go first).
CENSUS_CACHE_LIMIT = 1000


class CensusCache:
    """Censuses on disk, one JSON file per key in ``directory``; :meth:`prune` keeps the
    ``limit`` most recently used (a read touches the file), so the cache stays bounded even when
    every session has a new random seed (a new key)."""

    def __init__(self, directory: Any, limit: int | None = None,
                 shipped: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        from pathlib import Path

        self.directory = Path(directory)
        self.limit = CENSUS_CACHE_LIMIT if limit is None else limit
        #: entries read by the xdist controller and sent to this worker (``workerinput``): looked
        #: up before the disk
        self.shipped: dict[str, Mapping[str, Any]] = dict(shipped or {})

    def _path(self, key: str) -> Any:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> Census | None:
        import os

        path = self._path(key)
        try:
            data = self.shipped.get(key) or json.loads(path.read_text(encoding="utf-8"))
            census = Census.from_json(data)
        except (OSError, KeyError, TypeError, ValueError, AttributeError):
            return None
        try:
            os.utime(path)  # a use, for prune()
        except OSError:
            pass
        return census

    def lookup(self, key: str, seed: int) -> Census | None:
        """The census of ``key``; when the one cached there drew on the seed, the one of this seed."""
        census = self.get(key)
        if census is not None and census.seeded:
            return self.get(seeded_key(key, seed))
        return census

    def store(self, key: str, seed: int, census: Census) -> None:
        """Cache ``census`` under ``key``, or, when it drew on the seed, under the seed's key with
        a note under ``key``."""
        if census.seeded:
            self.set(key, Census(seeded=True))
            self.set(seeded_key(key, seed), census)
        else:
            self.set(key, census)

    def set(self, key: str, census: Census) -> None:
        import os

        path = self._path(key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(census.to_json(), sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def entries(self) -> dict[str, Any]:
        """Every entry on disk, key -> JSON (what the xdist controller ships to its workers)."""
        out: dict[str, Any] = {}
        try:
            paths = list(self.directory.glob("*.json"))
        except OSError:
            return out
        for p in paths:
            try:
                out[p.stem] = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
        return out

    def lock(self, key: str) -> Any:
        """A context manager holding an exclusive lock on ``key`` (a ``.lock`` file; ``fcntl``),
        so that xdist workers collecting the same test compute its census once: the second waits
        and reads what the first stored. Without ``fcntl`` (Windows) it does not lock."""
        import contextlib
        from pathlib import Path

        @contextlib.contextmanager
        def held() -> Any:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX
                yield
                return
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                fh = open(self.directory / f"{key}.lock", "a")  # closed below
            except OSError:
                yield
                return
            try:
                fcntl.flock(fh, fcntl.LOCK_EX)
                yield
            finally:
                # gone before it is released: a process still waiting on it holds the old file
                # and then finds the census stored; a later one makes a new lock file
                Path(fh.name).unlink(missing_ok=True)
                fh.close()  # releases the lock

        return held()

    def prune(self) -> int:
        """Drop all but the ``limit`` most recently used entries; returns how many went."""
        try:
            entries = []
            for p in self.directory.glob("*.json"):
                try:
                    entries.append((p.stat().st_mtime, p))
                except OSError:  # another process pruned it
                    continue
        except OSError:
            return 0
        entries.sort(key=lambda e: e[0], reverse=True)
        gone = 0
        for _, p in entries[self.limit:]:
            try:
                p.unlink()
                gone += 1
            except OSError:
                pass
        return gone


def conftest_paths(test_dir: Any, rootdir: Any) -> list[Any]:
    """The ``conftest.py`` files from ``rootdir`` down to ``test_dir`` (those that exist)."""
    from pathlib import Path

    d, root = Path(test_dir), Path(rootdir)
    dirs = [d]
    while d != root and d.parent != d and root in d.parents:
        d = d.parent
        dirs.append(d)
    return [p for p in (directory / "conftest.py" for directory in reversed(dirs)) if p.is_file()]


def _imported_names(tree: Any, package: str | None) -> list[str]:
    """Module names an ``ast`` tree imports (anywhere, function bodies too); for ``from a import
    b`` both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    import ast
    import importlib.util

    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if not package:
                    continue
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package)
                except (ImportError, ValueError):
                    continue
            if base:
                names.append(base)
                names.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _module_file(name: str) -> str | None:
    """The source file of module ``name``: from ``sys.modules``, else located by importlib's
    finders without importing anything (only when its parent package is already imported)."""
    import importlib.util
    import sys

    mod = sys.modules.get(name)
    if mod is not None:
        return getattr(mod, "__file__", None)
    parent = name.rpartition(".")[0]
    if parent and parent not in sys.modules:
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def import_closure(start: Iterable[Any], rootdir: Any, exclude: Iterable[Any] = ()) -> list[Any]:
    """``start`` and every Python file under ``rootdir`` they import, transitively (read with
    ``ast``: ``import helper``, ``from helper import N``, relative imports, imports inside
    functions), leaving out ``exclude`` directories and installed packages (site-packages).
    What a test imports from its own project decides what it does, so it is part of a census's
    key; imports by other means (``importlib``, ``pytest_plugins`` strings) are not seen."""
    import ast
    import sys
    from pathlib import Path

    root = Path(rootdir).resolve()
    skip = [Path(e).resolve() for e in exclude]
    by_file = {}
    for loaded in list(sys.modules.values()):
        f = getattr(loaded, "__file__", None)
        if isinstance(f, str):
            by_file[f] = loaded

    def wanted(path: Path) -> bool:
        if path.suffix != ".py" or (root not in path.parents and path != root):
            return False
        if any(s == path or s in path.parents for s in skip):
            return False
        return not {"site-packages", "dist-packages"} & set(path.parts)

    todo = [Path(p).resolve() for p in start]
    seen: dict[Path, None] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        mod = by_file.get(str(path))
        package = getattr(mod, "__package__", None) if mod is not None else None
        for name in _imported_names(tree, package):
            found = _module_file(name)
            if found:
                target = Path(found).resolve()
                if target not in seen and wanted(target):
                    todo.append(target)
    return sorted(seen)


def files_digest(paths: Iterable[Any]) -> str:
    """Digest of these files' paths and contents (a missing file counts as empty)."""
    from pathlib import Path

    h = hashlib.sha1()
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b""
        h.update(str(path).encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:16]


_SOURCE_DIGEST: dict[str, str] = {}


def source_digest(*modules: str) -> str:
    """Digest of the source files of these packages (the model's code decides the census)."""
    import importlib
    from pathlib import Path

    key = ",".join(modules)
    if key not in _SOURCE_DIGEST:
        h = hashlib.sha1()
        for name in modules:
            mod = importlib.import_module(name)
            root = Path(getattr(mod, "__file__", "") or "").parent
            for path in sorted(root.rglob("*.py")):
                h.update(path.read_bytes())
        _SOURCE_DIGEST[key] = h.hexdigest()[:16]
    return _SOURCE_DIGEST[key]


# --- outcome ----------------------------------------------------------------------------------
def is_kernel_bug(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what it was raised from) is the model's ``KernelBug`` (by class name:
    the model may be reloaded, as pytester does)."""
    seen = 0
    while exc is not None and seen < 10:
        if any(c.__name__ == "KernelBug" for c in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def classify(
    *,
    fired: bool,
    kernel_bug: bool,
    problems: Iterable[str],
    body_failed: bool,
    error_after_fire: bool,
    skipped: bool = False,
) -> str:
    """One outcome word for a scenario (see the module docstring for the order)."""
    kinds = set(problems)
    if kernel_bug:
        return "kernel-bug"
    if "invariant" in kinds:
        return "invariant"
    if "warn" in kinds:
        return "warn"
    if body_failed:
        return "failed"
    if skipped:
        return "skipped"
    if not fired:
        return "not-fired"
    return "clean" if error_after_fire else "success"


class ErrorWatch:
    """Remembers how many errors each host had returned to the caller when the scenario's first
    fault fired, to tell afterwards whether one reached the caller since (``host.user_errors``)."""

    def __init__(self) -> None:
        self.marks: dict[int, int] | None = None

    def fired(self, hosts: Iterable[Any]) -> None:
        if self.marks is None:
            self.marks = {id(h): len(getattr(h, "user_errors", ())) for h in hosts}

    def errors_since(self, hosts: Iterable[Any]) -> list[Any]:
        if self.marks is None:
            return []
        out: list[Any] = []
        for h in hosts:
            out.extend(list(getattr(h, "user_errors", ()))[self.marks.get(id(h), 0):])
        return out


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""


# --- pytest-free sweeps -----------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    """One scenario of :func:`run_sweep` and how it ended."""

    scenario: Scenario
    outcome: str
    detail: str = ""


def _hosts_of(state: Any) -> list[Any]:
    if hasattr(state, "user_errors"):
        return [state]
    if isinstance(state, Mapping):
        return [v for v in state.values() if hasattr(v, "user_errors")]
    if isinstance(state, (tuple, list)):
        return [v for v in state if hasattr(v, "user_errors")]
    host = getattr(state, "host", None)
    return [host] if host is not None else []


def run_scenario(state: Any, op: Callable[[Any], None], scenario: Scenario,
                 hosts: Callable[[Any], list[Any]] = _hosts_of) -> Result:
    """Run ``op(state)`` with the scenario's faults armed (in a fresh scope) and classify it:
    an exception from ``op`` that the model returned to the caller is the "error reached the
    caller" of a clean scenario; any other exception is a failure."""
    hs = hosts(state)
    warns = {id(h): len(h.warnings) for h in hs}
    watch = ErrorWatch()
    body_failed = False
    detail = ""
    kbug = False
    with faults.scope(inherit=False) as sc:
        sc.listeners.append(lambda _f: watch.fired(hs))
        armings = [faults.inject(f.point, f.kind, nth=f.nth, when=f.when(), source="sweep") for f in scenario.faults]
        try:
            op(state)
        except BaseException as exc:  # what the op raised is the scenario's result
            kbug = is_kernel_bug(exc)
            caller_saw = any(e.error == type(exc).__name__ for e in watch.errors_since(hs))
            if not caller_saw and not kbug:
                body_failed = True
            detail = f"{type(exc).__name__}: {exc}"
        fired = bool(armings) and armings[0].fired > 0
    problems: list[str] = []
    for h in hs:
        if h.violations():
            problems.append("invariant")
        if len(h.warnings) > warns[id(h)]:
            problems.append("warn")
            detail = detail or str(h.warnings[-1])
    outcome = classify(fired=fired, kernel_bug=kbug, problems=problems, body_failed=body_failed,
                       error_after_fire=bool(watch.errors_since(hs)))
    return Result(scenario, outcome, detail)


def run_sweep(
    setup: Callable[[], Any],
    op: Callable[[Any], None],
    spec: SweepSpec = SweepSpec(),
    *,
    revision: str | None = None,
    resume: bool = True,
) -> list[Result]:
    """Sweep ``op`` over every reachable fault, without pytest.

    ``setup()`` builds the state (a ``Host``, or a tuple/mapping holding hosts and files) and is
    not swept; ``op(state)`` is. A census run of ``op`` finds the reachable (point, nth); then
    each scenario runs ``op`` on a fresh state: with ``resume`` a ``copy.deepcopy`` of the state
    ``setup`` built once (snapshot-and-resume: the setup prefix is paid once), else a new
    ``setup()`` per scenario."""
    base_state = setup()
    with faults.scope(inherit=False, record=True) as sc:
        bc = BodyCensus(sc)
        op(copy.deepcopy(base_state))
        census = bc.stop()
    base = Scenario((), revision)
    todo = plan(spec, census.hits, base)
    results = []
    for scenario in todo:
        state = copy.deepcopy(base_state) if resume else setup()
        results.append(run_scenario(state, op, scenario))
    if spec.depth == 2:
        for parent in todo:
            state = copy.deepcopy(base_state) if resume else setup()
            with faults.scope(inherit=False, record=True) as sc:
                bc = BodyCensus(sc)
                f = parent.faults[0]
                faults.inject(f.point, f.kind, nth=f.nth, source="sweep census")
                try:
                    op(state)
                except Exception:  # the census only counts the rollback hits
                    pass
                rb = bc.stop().phase_hits.get(ROLLBACK, {})
            for child in plan(spec, rb, parent, ROLLBACK):
                state = copy.deepcopy(base_state) if resume else setup()
                results.append(run_scenario(state, op, child))
    return results


# --- tables -----------------------------------------------------------------------------------
def tally(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per revision (and depth): scenarios and their outcomes, from sweep records (dicts with
    ``revision``, ``depth``, ``outcome``). Rows keyed ``"rfc-v2"`` or ``"rfc-v2 depth 2"``."""
    rows: dict[str, dict[str, Any]] = {}
    for rec in records:
        rev = str(rec.get("revision") or "?")
        depth = int(rec.get("depth") or 1)
        key = rev if depth == 1 else f"{rev} depth {depth}"
        row = rows.setdefault(key, {"revision": rev, "depth": depth, "scenarios": 0,
                                    "outcomes": dict.fromkeys(OUTCOMES, 0)})
        row["scenarios"] += 1
        out = str(rec.get("outcome"))
        row["outcomes"][out] = row["outcomes"].get(out, 0) + 1
    return rows


# --- one sweep item's state (the plugin keeps it in the item's stash) ---------------------------
@dataclass
class ItemState:
    """A sweep item (or a census run) while it runs: the faults it carries, which outcomes are
    tolerated (reported as xfail instead of failing), and what the run showed."""

    scenario: Scenario
    source: str
    base_nodeid: str
    census_mode: bool = False
    tolerated: frozenset[str] = frozenset()
    flags: str = ""  # command-line options that make the item exist (for the reproduce line)
    body: BodyCensus | None = None
    census: Census | None = None
    watch: ErrorWatch = field(default_factory=ErrorWatch)
    fired: bool = False
    body_failed: bool = False
    body_skipped: bool = False  # pytest.skip() / pytest.xfail() in the body: not a failure
    phase_failed: str | None = None  # "setup" or "teardown": a fixture (not the plugin's checks) failed
    kernel_bug: bool = False
    detail: str = ""

    def fired_fault(self, fired: faults.Fired, hosts: Iterable[Any]) -> None:
        if fired.arming.source == self.source:
            self.watch.fired(hosts)

    def begin_body(self, scope: faults.Scope) -> None:
        self.body = BodyCensus(scope)

    def body_raised(self, exc: BaseException, *, skipped: bool = False) -> None:
        """The body raised ``exc``; ``skipped``: it is pytest's skip or xfail, not a failure."""
        if skipped:
            self.body_skipped = True
            self.detail = self.detail or f"skipped: {_first_line(exc)}"
            return
        self.kernel_bug = self.kernel_bug or is_kernel_bug(exc)
        self.body_failed = True
        self.detail = self.detail or f"{type(exc).__name__}: {_first_line(exc)}"

    def outside_body_raised(self, phase: str, exc: BaseException) -> None:
        """A fixture failed in ``phase`` ("setup", "teardown"): the item errors, so the
        scenario is ``failed`` (unless a KernelBug, WARN or invariant outranks it)."""
        self.kernel_bug = self.kernel_bug or is_kernel_bug(exc)
        self.phase_failed = self.phase_failed or phase
        self.detail = self.detail or f"{phase}: {type(exc).__name__}: {_first_line(exc)}"

    def end_body(self, scope: faults.Scope, hosts: Iterable[Any]) -> None:
        if self.body is not None and self.census is None:
            self.census = self.body.stop()
            self.census.ok = not self.body_failed
        self.fired = any(a.fired for a in scope.history if a.source == self.source)
        if self.census is not None:
            self.census.fired = self.fired
            # a probabilistic fault rolls the scope's seeded dice: the hits may depend on the seed
            self.census.seeded = self.census.seeded or any(not a.policy.deterministic for a in scope.history)
        for e in self.watch.errors_since(hosts):
            if e.error == "KernelBug":
                self.kernel_bug = True
                self.detail = self.detail or f"KernelBug: {e.message}"

    def outcome(self, problems: Sequence[Any], hosts: Iterable[Any]) -> str:
        errors = self.watch.errors_since(hosts)
        return classify(
            fired=self.fired,
            kernel_bug=self.kernel_bug,
            problems=[str(getattr(p, "kind", p)) for p in problems],
            body_failed=(self.body_failed or self.phase_failed is not None) and not self.kernel_bug,
            error_after_fire=bool(errors),
            skipped=self.body_skipped,
        )

    def failure_after_body(self) -> str | None:
        """Why a body that passed still fails the item (plain sweeps): the fault never fired,
        or a KernelBug reached the caller and the test swallowed it."""
        if self.kernel_bug:
            return f"gmem sweep: a KernelBug reached the caller (the test caught it): {self.detail}"
        if not self.fired and self.scenario.faults:
            return (f"gmem sweep: {self.scenario.faults[-1].text()} never fired, although the census run "
                    "reached it (does the test do the same thing on every run?)")
        return None

    def record(self, outcome: str, problems: Sequence[Any], hosts: Iterable[Any], revision: str) -> dict[str, Any]:
        errors = self.watch.errors_since(hosts)
        detail = self.detail
        texts = [str(getattr(p, "text", p)) for p in problems]
        if outcome in ("warn", "invariant") and texts:
            detail = texts[0]
        elif outcome == "clean" and errors:
            detail = f"{errors[0].operation}: {errors[0].message}"
        return {
            **self.scenario.to_json(),
            "base": self.base_nodeid,
            "revision": revision,
            "compared": self.scenario.revision is not None,
            "outcome": outcome,
            "detail": detail.splitlines()[0][:300] if detail else "",
        }


# --- batched scenarios: many scenarios in one item, each resumed from the item's set-up state --
@dataclass
class Resume:
    """What every scenario of a batch starts from: the batch item's function-scoped fixture
    values after its setup (``values``: deep-copied per scenario, together, so that what they
    share stays shared), the values of wider-scoped fixtures (``shared``: never copied), the
    hosts and files the setup built with the WARN count each started from, and the test's own
    arming requests (session and marker faults), ``allow_warn`` patterns, check flag and seed."""

    call: Callable[..., Any]
    argnames: tuple[str, ...]
    values: dict[str, Any]
    shared: dict[str, Any]
    hosts: list[Any]
    files: list[Any]
    warn_seen: dict[int, int]
    requests: Sequence[Any]
    allow: Sequence[Any]
    check: bool
    seed: int
    is_skip: Callable[[BaseException], bool]
    _blob: bytes | None = None
    _pickled: bool | None = None

    def fresh(self) -> tuple[dict[str, Any], list[Any], list[Any]]:
        """A copy of (values, hosts, files), sharing ``shared``: unpickled from one pickle of the
        set-up state (taken at the first call; a third of a ``deepcopy``'s cost), or deep-copied
        when something in it does not pickle."""
        import io
        import pickle

        shared = {id(v): k for k, v in self.shared.items()}
        state = (self.values, self.hosts, self.files)
        if self._pickled is None:
            buf = io.BytesIO()
            pickler = pickle.Pickler(buf, pickle.HIGHEST_PROTOCOL)
            pickler.persistent_id = lambda obj: shared.get(id(obj))  # type: ignore[method-assign]
            try:
                pickler.dump(state)
                self._blob, self._pickled = buf.getvalue(), True
            except Exception:  # a lambda, a lock, an open file: copy it the slow way
                self._pickled = False
        if self._pickled and self._blob is not None:
            if not shared:
                return pickle.loads(self._blob)  # type: ignore[no-any-return]
            unpickler = pickle.Unpickler(io.BytesIO(self._blob))
            unpickler.persistent_load = self.shared.__getitem__  # type: ignore[method-assign]
            return unpickler.load()  # type: ignore[no-any-return]
        memo: dict[int, Any] = {i: self.shared[k] for i, k in shared.items()}
        return copy.deepcopy(state, memo)


@dataclass
class ResumedRun:
    """One scenario of a batch after it ran: its test run, its sweep state, what the body raised,
    the problems found after the body and when the hosts were closed, and the faults armed in
    the root scope meanwhile (disarmed)."""

    state: ItemState
    run: Any  # testrun.TestRun
    exc: BaseException | None
    after_body: list[Any]
    at_close: list[Any]
    earlier: bool  # problems were found after the body (the close's are then not a new failure)
    leaked: list[faults.Arming]


def run_resumed(resume: Resume, state: ItemState, nodeid: str, requests: Sequence[Any],
                on_fired: Callable[[faults.Fired], None] | None = None,
                around_body: Callable[[], Any] | None = None) -> ResumedRun:
    """Run one scenario of a batch as its own sweep item would, without pytest: a fresh test run
    (scope, seed, armings: ``resume.requests`` and the scenario's ``requests``), the test function
    on a deep copy of the set-up fixture values, the checks after the body, the hosts closed and
    checked again. ``around_body``: a context manager factory wrapped around the body (coverage
    contexts)."""
    import contextlib

    from .testrun import TestRun

    values, hosts, files = resume.fresh()
    run = TestRun(nodeid, resume.seed)
    for host, twin in zip(resume.hosts, hosts, strict=True):
        if hasattr(twin, "check_rollback"):
            twin.check_rollback = True  # a swept error must leave the file as it was (invariant 7)
        run.add_host(twin)
        run._warn_seen[id(twin)] = resume.warn_seen.get(id(host), 0)
    run.files.extend(files)
    run.used_model = bool(run.hosts or run.files)
    run.requests = [*resume.requests, *requests]
    run.allow = resume.allow
    run.check = resume.check
    exc: BaseException | None = None
    run.start()
    try:
        if on_fired is not None:
            run.scope.listeners.append(on_fired)
        run.scope.listeners.append(lambda fired: state.fired_fault(fired, run.hosts))
        run.arm()
        state.begin_body(run.scope)
        with around_body() if around_body is not None else contextlib.nullcontext():
            try:
                resume.call(**{a: values[a] if a in values else resume.shared[a] for a in resume.argnames})
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # what the body raised is the scenario's result
                exc = e
                state.body_raised(e, skipped=resume.is_skip(e))
        state.end_body(run.scope, run.hosts)
        after = run.end_body()
        leaked = run.root_leaks()
        earlier = bool(run.problems)
        at_close = run.close_hosts()
    finally:
        run.finish()
    return ResumedRun(state, run, exc, after, at_close, earlier, leaked)
