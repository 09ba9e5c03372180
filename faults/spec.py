"""Armings as values: what the text grammar parses into and formats from.

An :class:`ArmingSpec` is one ``target[filters]=chain@options`` item of a spec. It is a frozen
value: two specs that arm the same way compare equal whatever whitespace or spelling the text
used (``ENOMEM`` / ``enomem``, ``25%`` / ``25.0%``), so ``parse(format_spec(s)) == s``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .arming import Term
from .errors import FaultError
from .kinds import PARAM_KINDS, Callback, Errno, Kind, Off

#: A value in a filter or a kind argument.
Value = int | float | str | bool | None

#: The options that switch an arming from chain to keyword (``inject``) semantics.
RULE_OPTIONS = ("nth", "skip", "every", "times", "probability")
OPTIONS = (*RULE_OPTIONS, "seed")

INT_VALUE = re.compile(r"[-+]?\d+", re.ASCII)
FLOAT_VALUE = re.compile(r"[-+]?(?:(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)", re.ASCII)
BARE_VALUE = re.compile(r"[A-Za-z0-9_.:/+-]+")
KEYWORD_VALUES: dict[str, Value] = {"none": None, "true": True, "false": False}


@dataclass(frozen=True)
class TermSpec:
    """One ``[pct%][count*]kind`` term. ``percent`` is 0..100 as written; None means always."""

    kind: Kind
    count: int | None = None
    percent: float | None = None

    def to_term(self) -> Term:
        """A fresh engine term (terms carry counters, so each arming gets its own)."""
        prob = None if self.percent is None else self.percent / 100.0
        return Term(self.kind, self.count, prob)


@dataclass(frozen=True)
class RuleSpec:
    """Keyword semantics, as ``faults.inject(..., nth=, times=, every=, skip=, probability=)``;
    ``times=None`` is unlimited (``times=inf`` in the text, where ``every=`` without ``times=``
    also means unlimited). The values are resolved: ``RuleSpec(every=3)`` fires once."""

    nth: int | None = None
    times: int | None = 1
    every: int | None = None
    skip: int = 0
    probability: float | None = None


@dataclass(frozen=True)
class ArmingSpec:
    """One arming. ``rule`` is None for a fail-rs chain of ``terms``; otherwise ``terms`` holds
    exactly one term (without count or percentage) and ``rule`` says which hits fire.
    ``when`` is sorted ``(key, value)`` pairs; ``text`` is what was parsed (not compared)."""

    pattern: str
    terms: tuple[TermSpec, ...]
    rule: RuleSpec | None = None
    when: tuple[tuple[str, Value], ...] = ()
    seed: int | None = None
    text: str = field(default="", compare=False)
    #: Index of the arming's first character in the whole spec text (for error carets).
    offset: int = field(default=0, compare=False, repr=False)

    @property
    def kind(self) -> Kind:
        """The kind of a keyword-form arming (the first term's kind for a chain)."""
        return self.terms[0].kind

    def when_map(self) -> dict[str, Value] | None:
        """The ``when`` filter as ``faults.inject`` takes it (None when there is none)."""
        return dict(self.when) if self.when else None

    def __str__(self) -> str:
        return format_arming(self)


# --- formatting ---------------------------------------------------------------------------------
def format_spec(spec: ArmingSpec | Iterable[ArmingSpec]) -> str:
    """The canonical text of one arming or of several (joined with ``;``)."""
    if isinstance(spec, ArmingSpec):
        return format_arming(spec)
    return ";".join(format_arming(s) for s in spec)


def format_arming(spec: ArmingSpec) -> str:
    text = spec.pattern
    if spec.when:
        text += "[" + ",".join(f"{k}={format_value(v)}" for k, v in spec.when) + "]"
    text += "=" + "->".join(_format_term(t) for t in spec.terms)
    opts = _format_rule(spec.rule) if spec.rule is not None else []
    if spec.seed is not None:
        opts.append(f"seed={_int_text(spec.seed)}")
    return text + ("@" + ",".join(opts) if opts else "")


def _format_term(term: TermSpec) -> str:
    pct = "" if term.percent is None else f"{format_number(term.percent)}%"
    cnt = "" if term.count is None else f"{_int_text(term.count)}*"
    return pct + cnt + format_kind(term.kind)


def _format_rule(rule: RuleSpec) -> list[str]:
    opts = []
    if rule.nth is not None:
        opts.append(f"nth={_int_text(rule.nth)}")
    if rule.skip:
        opts.append(f"skip={_int_text(rule.skip)}")
    if rule.every is not None:
        opts.append(f"every={_int_text(rule.every)}")
    if rule.probability is not None:
        opts.append(f"probability={format_number(rule.probability)}")
    default = None if rule.every is not None else 1  # what the parser assumes without times=
    if rule.times != default or not opts:  # with no other option, times=1 keeps the keyword form
        opts.append("times=inf" if rule.times is None else f"times={_int_text(rule.times)}")
    return opts


def format_kind(kind: Kind) -> str:
    """The text of a kind: ``off``, ``ENOMEM``, ``speculative_refcount(refs=2,hold=3)``."""
    if isinstance(kind, Off):
        return "off"
    if isinstance(kind, Errno):
        return kind.code
    if isinstance(kind, Callback) or PARAM_KINDS.get(kind.name) is not type(kind):
        raise FaultError(f"fault kind {kind.label()} has no text form")
    args = []
    for f in dataclasses.fields(kind):  # type: ignore[arg-type]
        value = getattr(kind, f.name)
        if f.init and (f.default is dataclasses.MISSING or value != f.default):
            args.append(f"{f.name}={format_value(value)}")
    return kind.name + (f"({','.join(args)})" if args else "")


def format_number(x: float) -> str:
    """Shortest text that reads back as the same float (``25`` for 25.0)."""
    if not math.isfinite(x):
        raise FaultError(f"{x!r} has no text form")
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def format_value(value: Value) -> str:
    """Text that :func:`classify_value` (or a quoted string) reads back as ``value``."""
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        text = repr(value)
        if not math.isfinite(value):
            raise FaultError(f"{text} has no text form")
        return text
    if isinstance(value, str):
        if BARE_VALUE.fullmatch(value) and _reads_as_itself(value):
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise FaultError(f"{value!r} has no text form")


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than Python converts (sys.set_int_max_str_digits)
        raise FaultError(f"an integer of about {value.bit_length() * 0.30103:.0f} digits has no text form") from None


def _reads_as_itself(word: str) -> bool:
    try:
        return classify_value(word) == word
    except FaultError:  # a string of too many digits: quoted, it reads back as the string
        return False


def classify_value(word: str) -> Value:
    """The value an unquoted word stands for: integer, float, none/true/false, or itself.
    An integer of more digits than Python converts (4300 by default) is a FaultError."""
    if INT_VALUE.fullmatch(word):
        try:
            return int(word)
        except ValueError:
            raise FaultError(f"a whole number of {len(word.lstrip('+-'))} digits is too long") from None
    if FLOAT_VALUE.fullmatch(word):
        return float(word)
    return KEYWORD_VALUES.get(word.lower(), word)


def when_pairs(when: Mapping[str, Value]) -> tuple[tuple[str, Value], ...]:
    """A ``when`` mapping in the canonical (sorted) form ``ArmingSpec.when`` holds."""
    return tuple(sorted(when.items()))
