"""Arming rules: which hits of a point fire, and with what kind.

Two policies decide, hit by hit (``k`` is the 1-based count of hits the arming has seen that
passed its ``when`` filter):

* :class:`RulePolicy` for the keyword form: fire on hit ``skip + nth`` (default 1), then on every
  ``every``-th hit after it, at most ``times`` fires (None: unlimited; by default 1, or unlimited
  when ``every`` is given), each eligible hit taken with ``probability`` (seeded).
* :class:`ChainPolicy` for the text grammar (fail-rs terms): walk ``[p%][cnt*]kind`` terms in
  order; the first whose probability roll and remaining count allow it is taken (``off`` takes
  the hit without firing).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from .errors import FaultError
from .kinds import Kind, Off, as_kind

if TYPE_CHECKING:
    from .points import FaultPoint
    from .scope import Scope

When = Mapping[str, Any] | Callable[[Mapping[str, Any]], bool] | None


class Policy(Protocol):
    """Decides whether the k-th counted hit fires."""

    deterministic: bool

    def decide(self, k: int, rng: random.Random) -> Kind | None: ...

    def first_fire(self, k0: int) -> int | None:
        """Deterministic policies only: the smallest k >= k0 that fires (None: never)."""
        ...

    def describe(self) -> str: ...


class TimesDefault(enum.Enum):
    TIMES = "times"

    def __repr__(self) -> str:
        return "1 (unlimited with every=)"


#: The default of ``times``: 1, or unlimited (None) when ``every`` is given.
DEFAULT_TIMES: Final = TimesDefault.TIMES


class RulePolicy:
    """nth / times / every / skip / probability."""

    def __init__(
        self,
        kind: Kind,
        nth: int | None = None,
        times: int | TimesDefault | None = DEFAULT_TIMES,
        every: int | None = None,
        skip: int = 0,
        probability: float | None = None,
    ) -> None:
        if times is DEFAULT_TIMES:
            times = None if every is not None else 1
        _check_int("nth", nth, 1)
        _check_int("times", times, 1)
        _check_int("every", every, 1)
        _check_int("skip", skip, 0)
        _check_probability(probability)
        self.kind = kind
        self.nth = nth
        self.times = times
        self.every = every
        self.skip = skip
        self.probability = probability
        self.fired = 0
        self.start = skip + (nth or 1)
        self.deterministic = probability is None

    def decide(self, k: int, rng: random.Random) -> Kind | None:
        if k < self.start or (self.times is not None and self.fired >= self.times):
            return None
        if self.every and (k - self.start) % self.every:
            return None
        if self.probability is not None and rng.random() >= self.probability:
            return None
        self.fired += 1
        return self.kind

    def first_fire(self, k0: int) -> int | None:
        if self.times is not None and self.fired >= self.times:
            return None
        k = max(k0, self.start)
        if self.every:
            k = self.start + -(-(k - self.start) // self.every) * self.every
        return k

    def describe(self) -> str:
        parts = [self.kind.label()]
        if self.nth is not None:
            parts.append(f"nth={self.nth}")
        if self.skip:
            parts.append(f"skip={self.skip}")
        if self.every is not None:
            parts.append(f"every={self.every}")
        if self.times != 1:
            parts.append(f"times={'inf' if self.times is None else self.times}")
        if self.probability is not None:
            parts.append(f"probability={self.probability}")
        return " ".join(parts)


@dataclass(init=False)
class Term:
    """One ``[p%][cnt*]kind`` term of a chain; ``remaining`` counts down from ``count``.

    ``kind`` is a kind or its short name; ``count`` None (never runs out) or an integer >= 1;
    ``probability`` None (always) or a number from 0 to 1."""

    kind: Kind
    count: int | None
    probability: float | None

    def __init__(self, kind: Kind | str, count: int | None = None, probability: float | None = None) -> None:
        _check_int("a term's count", count, 1)
        _check_probability(probability, "a term's probability")
        self.kind = as_kind(kind)
        self.count = count
        self.probability = None if probability is None else float(probability)
        self.remaining = count

    def text(self) -> str:
        pct = "" if self.probability is None else f"{self.probability * 100:g}%"
        cnt = "" if self.count is None else f"{self.count}*"
        return f"{pct}{cnt}{self.kind.label()}"


class ChainPolicy:
    """fail-rs style chain of terms.

    The terms are copied, so one list can arm several times without sharing counts. Counted
    hits the engine skipped without asking (the batch fast path only asks about the hit that
    fires) were taken by ``off`` terms; :meth:`_catch_up` books them before each decision."""

    def __init__(self, terms: list[Term]) -> None:
        if not terms:
            raise FaultError("a fault chain needs at least one term")
        self.terms = [Term(t.kind, t.count, t.probability) for t in terms]
        self.deterministic = all(t.probability is None for t in terms)
        self.seen = 0  # counted hits accounted for (decided or booked by _catch_up)

    def _catch_up(self, upto: int) -> None:
        """Book hits ``seen+1 .. upto`` as taken by the current ``off`` terms. A firing term is
        never consumed here: a hit that fired through another arming leaves it for later."""
        n, self.seen = upto - self.seen, max(self.seen, upto)
        for term in self.terms:
            if n <= 0 or not isinstance(term.kind, Off):
                if term.remaining != 0:
                    return
                continue
            if term.remaining is None:
                return
            take = min(n, term.remaining)
            term.remaining -= take
            n -= take

    def decide(self, k: int, rng: random.Random) -> Kind | None:
        self._catch_up(k - 1)
        self.seen = max(self.seen, k)
        for term in self.terms:
            if term.remaining == 0:
                continue
            if term.probability is not None and rng.random() >= term.probability:
                continue
            if term.remaining is not None:
                term.remaining -= 1
            return None if isinstance(term.kind, Off) else term.kind
        return None

    def first_fire(self, k0: int) -> int | None:
        # Deterministic chains consume their terms in order: skip the counted 'off' terms.
        self._catch_up(k0 - 1)
        offs = 0
        for term in self.terms:
            if term.remaining == 0:
                continue
            if isinstance(term.kind, Off):
                if term.remaining is None:
                    return None
                offs += term.remaining
                continue
            return k0 + offs
        return None

    def describe(self) -> str:
        return "->".join(t.text() for t in self.terms)


def _check_probability(value: float | None, name: str = "probability") -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise FaultError(f"{name} must be a number between 0 and 1, got {value!r}")


def _check_int(name: str, value: int | None, low: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise FaultError(f"{name} must be an integer >= {low}, got {value!r}")


#: What a deterministic policy is given for ``rng``: it never draws from it.
_NO_RANDOM = random.Random(0)


class Arming:
    """A live arming; a context manager and a handle (``.disarm()``)."""

    def __init__(
        self,
        pattern: str,
        points: list[FaultPoint],
        policy: Policy,
        when: When,
        rng: random.Random | None,
        seed: int,
        scope: Scope,
        source: str | None,
    ) -> None:
        if when is not None and not callable(when) and not isinstance(when, Mapping):
            raise FaultError(f"when must be a mapping or a callable, got {when!r}")
        self.pattern = pattern
        self.points = frozenset(p.name for p in points)
        self.policy = policy
        self.when = when
        self._rng = rng  # made from ``seed`` when a probability first needs it (None: not yet)
        self.seed = seed
        self.scope = scope
        self.source = source
        self.hits = 0
        self.fired = 0
        self.live = True
        self._cleanups: list[Callable[[], None]] = []

    @property
    def rng(self) -> random.Random:
        """The arming's own generator, seeded with ``seed`` (for ``probability``)."""
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return self._rng

    def decide(self, k: int) -> Kind | None:
        """Whether its k-th counted hit fires: its policy's decision. A deterministic policy (no
        probability) never draws from the generator, so none is made for it."""
        return self.policy.decide(k, _NO_RANDOM if self.policy.deterministic else self.rng)

    # --- context manager / handle -------------------------------------------------------
    def __enter__(self) -> Arming:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disarm()

    def disarm(self) -> None:
        """Stop firing and run the cleanups of what the fired faults left (transient refs), newest
        first. Every cleanup runs even when one raises; the first exception is then re-raised."""
        if not self.live:
            return
        self.live = False
        self.scope._remove(self)
        cleanups, self._cleanups = self._cleanups, []
        run_all(reversed(cleanups))

    def on_disarm(self, fn: Callable[[], None]) -> None:
        """Register ``fn`` to run when this arming ends (the model drops injected refs)."""
        if self.live:
            self._cleanups.append(fn)
        else:
            fn()

    # --- filtering ------------------------------------------------------------------------
    def counted_offsets(self, count: int, ctx: Mapping[str, Any]) -> range | list[int] | LazyOffsets:
        """Which items of a batch of ``count`` hits pass the ``when`` filter (a callable
        filter is asked item by item, in order, only as far as the batch gets)."""
        when = self.when
        if when is None:
            return range(count)
        if isinstance(when, Mapping):
            index = ctx.get("index")
            if "index" in when and count > 1 and isinstance(index, int) and not isinstance(index, bool):
                rest = all(ctx.get(k) == v for k, v in when.items() if k != "index")
                want = when["index"]
                if isinstance(want, float) and want.is_integer():
                    want = int(want)  # index=5.0 matches item 5, as == does for a single hit
                off = want - index if isinstance(want, int) else -1
                return [off] if rest and 0 <= off < count else []
            ok = all(item_context(ctx, 0).get(k) == v for k, v in when.items())
            return range(count) if ok else []
        return LazyOffsets(count, ctx, when)

    def describe(self) -> str:
        text = f"{self.pattern}: {self.policy.describe()}"
        if self.when is not None:
            text += f" when {self.when!r}" if isinstance(self.when, Mapping) else " when <callable>"
        return text

    def __repr__(self) -> str:
        return f"<Arming {self.describe()} hits={self.hits} fired={self.fired}>"


class LazyOffsets:
    """The items of a batch that pass a callable ``when``, asked in item order and only up to
    the item being decided: a filter is never called for items after the one that fired, as
    with single hits."""

    def __init__(self, count: int, ctx: Mapping[str, Any], fn: Callable[[Mapping[str, Any]], bool]) -> None:
        self.count = count
        self.ctx = ctx
        self.fn = fn
        self.passed: set[int] = set()
        self.asked = 0  # items 0 .. asked-1 have been asked

    def __contains__(self, i: object) -> bool:
        if not isinstance(i, int) or not 0 <= i < self.count:
            return False
        while self.asked <= i:
            if self.fn(item_context(self.ctx, self.asked)):
                self.passed.add(self.asked)
            self.asked += 1
        return i in self.passed


def run_all(fns: Iterable[Callable[[], object]]) -> None:
    """Call every function even when some raise, then re-raise the first exception."""
    first: BaseException | None = None
    for fn in fns:
        try:
            fn()
        except BaseException as e:  # every cleanup must run; the first error is re-raised
            if first is None:
                first = e
    if first is not None:
        raise first


def item_context(ctx: Mapping[str, Any], i: int) -> Mapping[str, Any]:
    """The context of item ``i`` of a batch: an integer ``index`` is shifted by ``i``; any other
    ``index`` (None, a string) is the same for every item."""
    index = ctx.get("index")
    if i and isinstance(index, int) and not isinstance(index, bool):
        d = dict(ctx)
        d["index"] = index + i
        return d
    return ctx
