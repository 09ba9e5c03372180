"""The census: what a run of the test body reached (hits per point, per phase), and the cache
that keeps censuses on disk between sessions (keyed by what decides reachability)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import faults


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
