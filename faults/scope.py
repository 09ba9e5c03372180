"""Scopes: where armings, counters and the trace live.

The current scope is a ``contextvars`` variable, so two threads (or two asyncio tasks, or two
tests) never see each other's faults. A nested scope sees its parent's armings unless created
with ``inherit=False``; its own armings always end with it, even when the block raises.
"""

from __future__ import annotations

import contextvars
import random
import threading
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from . import points as _points
from .arming import (
    DEFAULT_TIMES,
    Arming,
    ChainPolicy,
    LazyOffsets,
    Policy,
    RulePolicy,
    Term,
    TimesDefault,
    When,
    item_context,
    run_all,
)
from .errors import FaultError, KindNotAllowed
from .kinds import Callback, Kind, Off, as_kind
from .points import FaultPoint, match_points

TRACE_LIMIT = 100_000

#: Base seeds of armings made without any seed: private, so arming never draws from (and never
#: shifts) the process-global ``random`` stream the code under test may be using.
_SEEDS = random.Random()

#: Serialises the slow path's decisions and bookkeeping (hit counts, policies' state, census,
#: trace) and arming / disarming, so threads sharing an arming (the root scope's) never corrupt
#: it. Reentrant: a ``when`` callable may hit another point. The idle fast path never takes it.
_LOCK = threading.RLock()


@dataclass(frozen=True)
class Fired:
    """A fault that fired: the model applies ``kind`` at ``point``.

    ``offset`` is the item of a batch (``hit_many``) that failed; ``nth`` the point's hit
    number within the arming's count."""

    point: str
    kind: Kind
    nth: int
    offset: int
    context: Mapping[str, Any]
    arming: Arming = field(compare=False, repr=False)

    def on_disarm(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the arming that fired this ends (drop transient state)."""
        self.arming.on_disarm(fn)

    def label(self) -> str:
        return f"{self.point}:{self.kind.name}#{self.nth}"


@dataclass(frozen=True)
class TraceEvent:
    """One call of a point: ``count`` hits starting at hit number ``nth`` of the scope."""

    point: str
    nth: int
    count: int
    context: Mapping[str, Any]
    fired: str | None = None
    fired_offset: int | None = None


class Scope:
    """Armings, the census of hits and the trace for a block of code."""

    def __init__(
        self,
        parent: Scope | None = None,
        *,
        inherit: bool = True,
        record: bool = False,
        seed: int | None = None,
        name: str = "",
    ) -> None:
        self.parent = parent
        self.inherit = inherit
        self.record = record
        self.seed: int | None = seed if seed is not None else (parent.seed if parent else None)
        self.name = name
        self.by_point: dict[str, list[Arming]] = {}
        self.history: list[Arming] = []
        self.census: Counter[str] = Counter()
        self.trace: deque[TraceEvent] = deque(maxlen=TRACE_LIMIT)
        self.trace_dropped = 0
        self.fired: list[Fired] = []
        self.listeners: list[Callable[[Fired], None]] = []
        self._serial = 0
        self._children = 0
        #: Where this scope sits under the nearest scope given a seed ("" for that scope, then
        #: "/1", "/1/2", ...): mixed into derived seeds so nested scopes get different ones.
        self.path = ""
        if seed is None and parent is not None:
            with _LOCK:
                parent._children += 1
                self.path = f"{parent.path}/{parent._children}"
        self.closed = False
        if record:  # a recording scope makes every hit take the slow path until it closes
            _points._adjust_active(1)

    # --- arming ---------------------------------------------------------------------------
    def arm(self, pattern: str, policy: Policy, kind_for_check: list[Kind], *, when: When = None,
            seed: int | None = None, source: str | None = None) -> Arming:
        if self.closed:
            raise FaultError(f"cannot arm {pattern!r}: scope {self.name or 'unnamed'!r} is closed")
        pts = match_points(pattern, source)
        glob = len(pts) > 1 or pattern != pts[0].name
        usable = [p for p in pts if all(p.allows(k) for k in kind_for_check)]
        if not usable:
            if not glob:
                for k in kind_for_check:
                    pts[0].check_kind(k, source)
            where = f" (from {source})" if source else ""
            names = ", ".join(sorted({k.name for k in kind_for_check}))
            raise KindNotAllowed(f"no fault point matching {pattern!r}{where} can produce {names}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise FaultError(f"seed must be an integer, got {seed!r}")
        self._serial += 1
        if seed is None:
            base = self.seed if self.seed is not None else _SEEDS.randrange(1 << 32)
            where = f"{self.path}:" if self.path else ""
            seed = zlib.crc32(f"{base}:{where}{pattern}:{self._serial}".encode())
        arming = Arming(pattern, usable, policy, when, None, seed, self, source)
        with _LOCK:
            for p in usable:
                self.by_point.setdefault(p.name, []).append(arming)
            self.history.append(arming)
        _points._adjust_active(1)
        return arming

    def _remove(self, arming: Arming) -> None:
        with _LOCK:
            for name in arming.points:
                lst = self.by_point.get(name)
                if lst and arming in lst:
                    lst.remove(arming)
                    if not lst:
                        del self.by_point[name]
        _points._adjust_active(-1)

    def armings(self) -> list[Arming]:
        """Live armings of this scope, in arming order."""
        return [a for a in self.history if a.live]

    def unfired(self) -> list[Arming]:
        """Armings made in this scope that never fired (usually a wrong test)."""
        return [a for a in self.history if a.fired == 0]

    def forget(self, arming: Arming) -> None:
        """Disarm ``arming`` and drop it from the history, as if it had never been made (what
        an all-or-nothing :func:`faults.arm` does to the armings it rolls back)."""
        try:
            arming.disarm()
        finally:
            with _LOCK:
                if arming in self.history:
                    self.history.remove(arming)

    def close(self) -> None:
        """Disarm everything armed here, newest first, running their cleanups. Every arming is
        disarmed and the scope closed even when a cleanup raises; the first exception is then
        re-raised."""
        try:
            run_all([a.disarm for a in reversed(self.history)])
        finally:
            if self.record and not self.closed:
                _points._adjust_active(-1)
            self.closed = True

    def chain(self) -> Iterator[Scope]:
        s: Scope | None = self
        while s is not None:
            yield s
            s = s.parent if s.inherit else None


_ROOT = Scope(name="root")
_CURRENT: contextvars.ContextVar[Scope] = contextvars.ContextVar("faults_scope", default=_ROOT)


def current() -> Scope:
    """The scope in force in this thread / task."""
    return _CURRENT.get()


@contextmanager
def scope(*, inherit: bool = True, record: bool = False, seed: int | None = None,
          name: str = "") -> Iterator[Scope]:
    """A new scope for the block: armings made in it end with it, even on exceptions."""
    sc = open_scope(inherit=inherit, record=record, seed=seed, name=name)
    token = _CURRENT.set(sc)
    try:
        yield sc
    finally:
        _CURRENT.reset(token)
        sc.close()


def open_scope(*, inherit: bool = True, record: bool = False, seed: int | None = None,
               name: str = "") -> Scope:
    """A scope object whose lifetime the caller manages (``activate`` / ``close``)."""
    return Scope(_CURRENT.get(), inherit=inherit, record=record, seed=seed, name=name)


def activate(sc: Scope) -> contextvars.Token[Scope]:
    """Make ``sc`` the current scope until :func:`deactivate` (for hooks that cannot use a
    ``with`` block, such as a pytest plugin's setup and teardown)."""
    return _CURRENT.set(sc)


def deactivate(token: contextvars.Token[Scope]) -> None:
    """Undo :func:`activate`."""
    _CURRENT.reset(token)


def inject(
    point: str,
    kind: Kind | str,
    *,
    nth: int | None = None,
    times: int | TimesDefault | None = DEFAULT_TIMES,
    every: int | None = None,
    skip: int = 0,
    probability: float | None = None,
    seed: int | None = None,
    when: When = None,
    source: str | None = None,
) -> Arming:
    """Arm ``kind`` at ``point`` (a name or a glob) in the current scope; see module docs.
    ``times`` defaults to 1, or to unlimited (None) when ``every`` is given."""
    k = as_kind(kind, source)
    if isinstance(k, Off):
        raise FaultError("kind 'off' only makes sense inside a chain (e.g. '2*off->1*enomem'); "
                         "use nth= / skip= with inject()")
    policy = RulePolicy(k, nth=nth, times=times, every=every, skip=skip, probability=probability)
    return current().arm(point, policy, [k], when=when, seed=seed, source=source)


def inject_chain(point: str, terms: list[Term], *, when: When = None, seed: int | None = None,
                 source: str | None = None) -> Arming:
    """Arm a fail-rs style chain of terms (what the text grammar produces)."""
    kinds = [t.kind for t in terms]
    return current().arm(point, ChainPolicy(terms), kinds, when=when, seed=seed, source=source)


# --- the slow path of FaultPoint.hit ---------------------------------------------------------
def armed(*points: FaultPoint | str) -> bool:
    """Whether any of ``points`` (points or names) is armed in the current scope chain, i.e.
    whether a hit of it could fire here. Lets a caller that batches several points' hits (at
    the cost of their order) take an exact one-by-one path only when a fault can fire."""
    names = {p if isinstance(p, str) else p.name for p in points}
    s: Scope | None = _CURRENT.get()
    while s is not None:
        if names.intersection(s.by_point):
            return True
        s = s.parent if s.inherit else None
    return False


def slow_hit(point: FaultPoint, count: int, ctx: dict[str, Any]) -> Fired | None:
    """Decide, record and announce a call of ``point`` covering ``count`` items.

    A callback that fires and applies nothing leaves the call going: the items up to it are
    recorded as one segment and the rest of the batch is decided again, so ``hit_many(n)``
    behaves as ``n`` calls of ``hit``. The census and trace are written before the callback runs
    (a callback that raises still leaves its hit on record)."""
    chain: list[Scope] = []
    wanted = False  # is the point armed, or the hit recorded, anywhere in the chain?
    s: Scope | None = _CURRENT.get()
    while s is not None:
        chain.append(s)
        wanted = wanted or s.record or point.name in s.by_point
        s = s.parent if s.inherit else None
    if not wanted:
        return None  # something else is armed: nothing to decide or record for this point
    start = 0
    while True:
        seg = ctx if not start else dict(item_context(ctx, start))
        with _LOCK:
            armings: list[Arming] = []
            for s in reversed(chain):  # outermost scope first: the earliest arming wins a tie
                lst = s.by_point.get(point.name)
                if lst:
                    armings.extend(lst)
            fired = _decide(point, armings, count - start, seg) if armings else None
            done = count - start if fired is None else fired.offset + 1
            for s in chain:
                if s.record:
                    base = s.census[point.name] + 1
                    s.census[point.name] += done
                    if len(s.trace) == TRACE_LIMIT:
                        s.trace_dropped += 1
                    s.trace.append(TraceEvent(point.name, base, done, dict(seg),
                                              fired.kind.label() if fired else None,
                                              fired.offset if fired else None))
        if fired is None:
            return None
        if start:
            fired = replace(fired, offset=start + fired.offset)
        kind = fired.kind
        if isinstance(kind, Callback):
            try:
                result = kind.fn(fired.context)
            except BaseException:
                _announce(chain, fired)
                raise
            if result is None:  # the callback had its effect; the rest of the batch goes on
                _announce(chain, fired)
                start = fired.offset + 1
                if start >= count:
                    return None
                continue
            fired = replace(fired, kind=result)  # the callback chose the kind to apply
        _announce(chain, fired)
        return fired


def _announce(chain: list[Scope], fired: Fired) -> None:
    for s in chain:
        s.fired.append(fired)
        for fn in s.listeners:
            fn(fired)


def _decide(point: FaultPoint, armings: list[Arming], count: int, ctx: dict[str, Any]) -> Fired | None:
    offsets = [a.counted_offsets(count, ctx) for a in armings]
    eager = [o for o in offsets if not isinstance(o, LazyOffsets)]
    if all(a.policy.deterministic for a in armings) and len(eager) == len(offsets):
        return _decide_deterministic(point, armings, eager, count, ctx)
    # General case: item by item, arming by arming (a callable when is asked in this order).
    sets: list[range | set[int] | LazyOffsets] = [set(o) if isinstance(o, list) else o for o in offsets]
    for i in range(count):
        for pos, (a, members) in enumerate(zip(armings, sets, strict=True)):
            if i in members:
                a.hits += 1
                kind = a.decide(a.hits)
                if kind is not None:
                    # Every arming counts the hit that fired (as the deterministic path does).
                    for later, loffs in zip(armings[pos + 1:], sets[pos + 1:], strict=True):
                        if i in loffs:
                            later.hits += 1
                    return _fire(point, a, kind, i, ctx)
    return None


def _decide_deterministic(point: FaultPoint, armings: list[Arming], offsets: list[range | list[int]],
                          count: int, ctx: dict[str, Any]) -> Fired | None:
    """Every arming fires on a known hit: the earliest item wins, in O(armings)."""
    best: tuple[int, int, int] | None = None  # (batch offset, arming position, k)
    for pos, (a, offs) in enumerate(zip(armings, offsets, strict=True)):
        if not len(offs):
            continue
        k = a.policy.first_fire(a.hits + 1)
        if k is None:
            continue
        j = k - a.hits - 1
        if j < len(offs) and (best is None or offs[j] < best[0]):
            best = (offs[j], pos, k)
    stop = count if best is None else best[0] + 1
    for a, offs in zip(armings, offsets, strict=True):
        a.hits += _count_below(offs, stop)
    if best is None:
        return None
    winner = armings[best[1]]
    kind = winner.decide(best[2])
    assert kind is not None
    return _fire(point, winner, kind, best[0], ctx)


def _count_below(offs: range | list[int], stop: int) -> int:
    if isinstance(offs, range):
        return max(0, min(len(offs), stop - offs.start))
    return sum(1 for o in offs if o < stop)


def _fire(point: FaultPoint, arming: Arming, kind: Kind, offset: int, ctx: dict[str, Any]) -> Fired:
    """The Fired for item ``offset`` of the call (a callback kind has not run yet)."""
    arming.fired += 1
    return Fired(point.name, kind, arming.hits, offset, dict(item_context(ctx, offset)), arming)


_points._SLOW = slow_hit
