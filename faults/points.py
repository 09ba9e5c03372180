"""Declared fault points and the registry behind ``faults.catalog()``.

A point is declared once, at import of the code that contains it, with the kinds it can
realistically produce (the allow-list, in the spirit of the kernel's ALLOW_ERROR_INJECTION).
``point.hit(**context)`` is what the code under test calls at the failure site; it costs a
global read and a compare while nothing anywhere is armed or recording.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from .errors import FaultError, KindNotAllowed, UnknownKind, UnknownPoint, suggest
from .kinds import UNIVERSAL_KINDS, Kind, allow_list_names, canonical_kind_name

if TYPE_CHECKING:
    from .scope import Fired

#: A point name: identifiers joined by dots (what the grammar's target can name).
POINT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", re.ASCII)

#: Number of live armings plus recording scopes, process-wide. Zero means every hit is idle.
_ACTIVE = 0
_REGISTRY: dict[str, FaultPoint] = {}
_ACTIVE_LOCK = threading.Lock()
_PROVIDERS_LOADED = False
PROVIDER_GROUP = "faults.providers"


def _slow_path_missing(point: FaultPoint, count: int, ctx: dict[str, Any]) -> Fired | None:
    raise RuntimeError("faults.scope was not imported; import the faults package, not faults.points")


#: The slow path, installed by ``faults.scope`` (kept out of this module to avoid a cycle).
_SLOW: Callable[[FaultPoint, int, dict[str, Any]], Fired | None] = _slow_path_missing


def _adjust_active(delta: int) -> None:
    global _ACTIVE
    with _ACTIVE_LOCK:  # armings come and go in several threads; never lose a count
        _ACTIVE += delta


def active() -> bool:
    """True while something anywhere is armed or recording (the hit slow path is taken)."""
    return _ACTIVE > 0


class FaultPoint:
    """A named failure site. Create with :func:`declare`."""

    __slots__ = ("doc", "kinds", "module", "name", "reached")

    def __init__(self, name: str, kinds: frozenset[str], doc: str, module: str, reached: str = "") -> None:
        self.name = name
        self.kinds = kinds
        self.doc = doc
        self.module = module
        self.reached = reached

    def __repr__(self) -> str:
        return f"FaultPoint({self.name!r}, kinds={sorted(self.kinds)})"

    def hit(self, **context: Any) -> Fired | None:
        """The code reached this point; returns the fired fault, or None."""
        if not _ACTIVE:
            return None
        return _SLOW(self, 1, context)

    def hit_many(self, count: int, **context: Any) -> Fired | None:
        """``count`` consecutive hits in one call (a per-page loop). Context key ``index`` is
        the first item's; item i has ``index + i``. The fired fault's ``.offset`` says which
        item failed; items before it succeeded."""
        if not _ACTIVE or count <= 0:
            return None
        return _SLOW(self, count, context)

    def allows(self, kind: Kind) -> bool:
        return kind.name in self.kinds or kind.name in UNIVERSAL_KINDS

    def check_kind(self, kind: Kind, source: str | None = None) -> None:
        """Raise :class:`KindNotAllowed` when this point cannot produce ``kind``."""
        if not self.allows(kind):
            where = f" (from {source})" if source else ""
            raise KindNotAllowed(
                f"fault point {self.name!r} cannot produce {kind.name!r}{where}; it can produce "
                f"{', '.join(sorted(self.kinds)) or 'nothing'}" + suggest(kind.name, self.kinds)
            )


@dataclass(frozen=True)
class PointInfo:
    """What ``faults.catalog()`` returns for one point."""

    name: str
    kinds: frozenset[str]
    doc: str
    module: str
    reached: str = ""


def declare(name: str, kinds: str | Iterable[str], doc: str, *, reached: str = "") -> FaultPoint:
    """Declare a fault point. ``kinds`` is the allow-list: kind names (errno names in any case,
    ``speculative_refcount``, ...) or a single name. ``reached`` says when the code gets there,
    as preconditions a test can check ("a huge folio is split: the range must be allocated and
    huge"); a fault that never fired is explained with it. Re-declaring the same name with the
    same kinds returns the same point (module reloads); with other kinds it is an error."""
    import sys

    frame = sys._getframe(1)
    module = str(frame.f_globals.get("__name__", "?"))
    if not isinstance(name, str) or not POINT_NAME.fullmatch(name):
        raise FaultError(f"fault point name {name!r} must be ASCII letters, digits and '_', not starting "
                         "with a digit, optionally dotted ('mm.alloc'), so that a spec can name it")
    ks = frozenset(_allowed_kind(name, k) for k in ([kinds] if isinstance(kinds, str) else kinds))
    existing = _REGISTRY.get(name)
    if existing is not None:
        if existing.kinds != ks:
            raise FaultError(f"fault point {name!r} declared twice with different kinds")
        return existing
    point = FaultPoint(name, ks, " ".join(doc.split()), module, " ".join(reached.split()))
    _REGISTRY[name] = point
    return point


def _allowed_kind(point: str, kind: object) -> str:
    canonical = canonical_kind_name(kind) if isinstance(kind, str) else None
    if canonical is None:
        raise UnknownKind(f"fault point {point!r} declares unknown kind {kind!r}"
                          + (suggest(kind, allow_list_names()) if isinstance(kind, str) else ""))
    return canonical


def load_providers() -> None:
    """Import every module registered under the ``faults.providers`` entry-point group."""
    global _PROVIDERS_LOADED
    if _PROVIDERS_LOADED:
        return
    _PROVIDERS_LOADED = True
    for ep in metadata.entry_points(group=PROVIDER_GROUP):
        ep.load()


def catalog() -> list[PointInfo]:
    """Every declared point, in name order (providers' modules are imported first)."""
    load_providers()
    return [PointInfo(p.name, p.kinds, p.doc, p.module, p.reached) for _, p in sorted(_REGISTRY.items())]


def get_point(name: str, source: str | None = None) -> FaultPoint:
    """The point called ``name``; :class:`UnknownPoint` with a close match otherwise."""
    load_providers()
    try:
        return _REGISTRY[name]
    except KeyError:
        where = f" (from {source})" if source else ""
        raise UnknownPoint(f"unknown fault point {name!r}{where}" + suggest(name, _REGISTRY)) from None


def match_points(pattern: str, source: str | None = None) -> list[FaultPoint]:
    """Points whose name matches ``pattern`` (a name or an fnmatch glob); never empty."""
    load_providers()
    if not any(c in pattern for c in "*?["):
        return [get_point(pattern, source)]
    found = [p for n, p in sorted(_REGISTRY.items()) if fnmatch.fnmatchcase(n, pattern)]
    if not found:
        where = f" (from {source})" if source else ""
        raise UnknownPoint(f"glob {pattern!r}{where} matches no fault point" + suggest(pattern, _REGISTRY))
    return found
