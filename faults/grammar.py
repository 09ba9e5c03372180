"""The text grammar of armings (``--gmem-fault``, ``GMEM_FAULTS``, ``@pytest.mark.fault``).

A spec is a ``;``-separated list of armings, each ``target[filters]=chain@options``::

    guestmem_hugetlb_stash_metadata=2*off->1*enomem;
    kvm_gmem_shareability_store[phase=rollback]=enomem;
    __kvm_gmem_filemap_add_folio=25%enomem@seed=7

==============================  ===================================================================
piece                           meaning
==============================  ===================================================================
``target``                      a point name or an fnmatch glob (``kvm_gmem_*``): letters, digits,
                                ``_ . * ?``
``[key=value,...]``             only hits whose context matches count (the ``when`` mapping)
``kind``                        ``off``, an errno (``ENOMEM``, ``eagain``: any case),
                                ``speculative_refcount(refs=2,hold=3)``, ``extra_refcount(refs=1)``,
                                ``tdx_error(TDX_OPERAND_BUSY)``, ``tdx_error(fatal)``
``N*kind``                      the term takes N hits, then the next term is consulted
``P%kind``                      each hit the term is consulted, it is taken with P percent chance
``t1->t2->...``                 a chain (fail-rs): the first term whose count and chance allow it
                                takes the hit; ``off`` takes it without firing; a term without
                                ``N*`` never runs out
``@seed=S``                     seeds the arming's random numbers (keeps chain semantics)
``@nth=,times=,every=,skip=,``  keyword semantics, as ``faults.inject``: one term only, fires on
``probability=``                hit ``skip+nth``, then every ``every``-th, at most ``times``
                                (``inf``: unlimited; default 1, or ``inf`` with ``every=``);
                                ``N*`` means ``times=N``, ``P%`` means ``probability=P/100``
==============================  ===================================================================

EBNF (whitespace is allowed around every token; empty armings between ``;`` are ignored)::

    spec     = [ arming ] { ";" [ arming ] } ;
    arming   = target [ "[" filter { "," filter } "]" ] "=" chain [ "@" option { "," option } ] ;
    target   = tchar { tchar } ;                     tchar = letter | digit | "_" | "." | "*" | "?" ;
    filter   = ident "=" value ;
    chain    = term { "->" term } ;
    term     = [ number "%" ] [ integer "*" ] ident [ "(" [ arg { "," arg } ] ")" ] ;
    arg      = [ ident "=" ] value ;
    option   = ( "nth" | "times" | "every" | "skip" | "seed" ) "=" integer
             | "times" "=" "inf" | "probability" "=" number ;   (* inf in any case *)
    value    = word | quoted ;        (* a word reads as integer, float, none/true/false or text *)
    word     = wchar { wchar } ;                     wchar = letter | digit | "_.:/+-" ;
    quoted   = '"' { char } '"' | "'" { char } "'" ;  (* backslash escapes the next char *)
    ident    = ( letter | "_" ) { letter | digit | "_" } ;
    integer  = digit { digit } ;
    number   = ( integer [ "." { digit } ] | "." integer ) [ ( "e" | "E" ) [ "+" | "-" ] integer ] ;

Percentages are 0..100 and ``probability=`` is 0..1 (fail-rs accepts 125%; we reject it).
Errors are :class:`~faults.errors.SpecSyntaxError` with ``.pos`` at the offending character;
unknown kinds and bad kind arguments raise the engine's error, located the same way; unknown
points are found when arming (:func:`arm`), with the same caret.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Iterable
from typing import NoReturn

from .arming import Arming
from .errors import FaultError, KindNotAllowed, SpecSyntaxError, UnknownKind, UnknownPoint, suggest
from .errors import caret_lines as _caret_lines
from .kinds import ERRNO_NAMES, PARAM_KINDS, Kind, Off, make_kind
from .scope import inject, inject_chain
from .spec import (
    OPTIONS,
    RULE_OPTIONS,
    ArmingSpec,
    RuleSpec,
    TermSpec,
    Value,
    classify_value,
    format_spec,
)

__all__ = ["ArmingSpec", "RuleSpec", "TermSpec", "arm", "format_spec", "parse"]

_SPACE = re.compile(r"\s+", re.ASCII)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TARGET = re.compile(r"[A-Za-z0-9_.*?]+")
_INT = re.compile(r"\d+", re.ASCII)
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)
_WORD = re.compile(r"[A-Za-z0-9_.:/+-]+")
_INF = re.compile(r"inf(?![A-Za-z0-9_])", re.IGNORECASE)
_MINIMUM = {"nth": 1, "times": 1, "every": 1, "skip": 0, "seed": 0}


def parse(text: str, source: str | None = None) -> list[ArmingSpec]:
    """Parse a spec into armings (an empty or blank spec gives ``[]``). ``source`` names where
    the text came from (``"GMEM_FAULTS"``) for error messages."""
    return _Parser(text, source).spec()


def parse_kind(text: str, source: str | None = None) -> Kind:
    """One kind in the text grammar (``"ENOMEM"``, ``"speculative_refcount(hold=3)"``,
    ``"speculative_refcount(hold=none)"``, ``"tdx_error(fatal)"``); FaultError for anything else
    (a count, a rule, a chain, ``off``)."""
    where = f" (from {source})" if source else ""
    specs = parse(f"kind={text.strip()}", source)
    one = specs[0] if len(specs) == 1 and len(specs[0].terms) == 1 else None
    if one is None or one.rule is not None or one.when or one.seed is not None or one.terms[0].count \
            or one.terms[0].percent is not None:
        raise FaultError(f"{text!r} is not a single fault kind (no count, percentage, rule or filter){where}")
    kind = one.terms[0].kind
    if isinstance(kind, Off):
        raise FaultError(f"'off' is not a fault kind{where}")
    return kind


def arm(text_or_specs: str | ArmingSpec | Iterable[ArmingSpec], source: str | None = None) -> list[Arming]:
    """Arm every arming of a spec (text, one parsed arming or several) in the current scope,
    all or nothing: if one fails (unknown
    point, kind the point cannot produce) the ones already armed are disarmed and forgotten
    (they appear in neither ``scope.unfired()`` nor ``scope.history``)."""
    text: str | None = None
    if isinstance(text_or_specs, str):
        text = text_or_specs
        specs = parse(text, source)
    elif isinstance(text_or_specs, ArmingSpec):
        specs = [text_or_specs]
    else:
        specs = list(text_or_specs)
    armed: list[Arming] = []
    try:
        for spec in specs:
            armed.append(_arm_one(spec, source, text))
    except BaseException:
        for a in reversed(armed):  # roll back: as if they had never been armed
            a.scope.forget(a)
        raise
    return armed


def _arm_one(spec: ArmingSpec, source: str | None, text: str | None) -> Arming:
    try:
        if spec.rule is None:
            terms = [t.to_term() for t in spec.terms]
            return inject_chain(spec.pattern, terms, when=spec.when_map(), seed=spec.seed, source=source)
        r = spec.rule
        return inject(spec.pattern, spec.kind, nth=r.nth, times=r.times, every=r.every, skip=r.skip,
                      probability=r.probability, seed=spec.seed, when=spec.when_map(), source=source)
    except (UnknownPoint, KindNotAllowed) as e:
        if text is None:
            raise
        raise type(e)(f"{e}\n{_caret_lines(text, spec.offset)}") from None


class _Parser:
    """Recursive descent over the characters of one spec; ``pos`` is always exact."""

    def __init__(self, text: str, source: str | None) -> None:
        self.text = text
        self.source = source
        self.pos = 0

    # --- low level ----------------------------------------------------------------------------
    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise SpecSyntaxError(message, self.text, self.pos if pos is None else pos, self.source)

    def peek(self) -> str:
        """Skip whitespace; the next character ('' at the end)."""
        m = _SPACE.match(self.text, self.pos)
        self.pos = m.end() if m else self.pos
        return self.text[self.pos : self.pos + 1]

    def accept(self, token: str) -> bool:
        self.peek()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str, message: str) -> None:
        if not self.accept(token):
            self.fail(message)

    def match(self, pattern: re.Pattern[str]) -> str | None:
        self.peek()
        m = pattern.match(self.text, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group()

    def integer(self, digits: str, pos: int) -> int:
        """``int(digits)``; a located error for more digits than Python converts (4300 by
        default, ``sys.set_int_max_str_digits``) instead of int()'s ValueError."""
        try:
            return int(digits)
        except ValueError:
            self.fail(f"a whole number of {len(digits)} digits is too long", pos)

    def need(self, pattern: re.Pattern[str], message: str) -> tuple[str, int]:
        self.peek()
        start = self.pos
        word = self.match(pattern)
        if word is None:
            self.fail(message)
        return word, start

    # --- grammar ------------------------------------------------------------------------------
    def spec(self) -> list[ArmingSpec]:
        specs: list[ArmingSpec] = []
        while self.peek():
            if self.accept(";"):
                continue
            specs.append(self.arming())
            if self.peek() and not self.accept(";"):
                self.fail("expected ';' between armings")
        return specs

    def arming(self) -> ArmingSpec:
        pattern, start = self.need(_TARGET, "expected a fault point name or glob")
        when: tuple[tuple[str, Value], ...] = ()
        if self.peek() == "[":
            when = self.filters()
        self.expect("=", "expected '=' (or '[' before filters) after the point name"
                    if not when else "expected '=' after the filters")
        terms, arrows = self.chain()
        options: dict[str, tuple[int | float | None, int]] = {}
        if self.accept("@"):
            options = self.options()
        elif self.peek() not in ("", ";"):
            self.fail("expected '->', '@', ';' or the end of the spec")
        seed = options.pop("seed", (None, 0))[0]
        rule = self.rule(terms, arrows, options) if options else None
        if rule is not None:
            terms = [TermSpec(terms[0].kind)]
        return ArmingSpec(pattern, tuple(terms), rule, when, None if seed is None else int(seed),
                          self.text[start : self.pos].strip(), start)

    def filters(self) -> tuple[tuple[str, Value], ...]:
        self.expect("[", "expected '['")
        seen: dict[str, Value] = {}
        while True:
            key, kpos = self.need(_IDENT, "expected a context key (a name like phase or index)")
            if key in seen:
                self.fail(f"context key {key!r} given twice", kpos)
            self.expect("=", f"expected '=' after context key {key!r}")
            seen[key] = self.value()
            if self.accept("]"):
                return tuple(sorted(seen.items()))
            self.expect(",", "expected ',' or ']' in the filters")

    def chain(self) -> tuple[list[TermSpec], list[int]]:
        terms = [self.term()]
        arrows: list[int] = []
        while self.peek() == "-" and self.text.startswith("->", self.pos):
            arrows.append(self.pos)
            self.pos += 2
            terms.append(self.term())
        return terms, arrows

    def term(self) -> TermSpec:
        percent: float | None = None
        count: int | None = None
        self.peek()
        npos = self.pos
        number = self.match(_NUMBER)
        if number is not None:
            if self.accept("%"):
                percent = float(number)
                if not 0.0 <= percent <= 100.0:
                    self.fail(f"a percentage must be between 0 and 100, got {number}%", npos)
                self.peek()
                npos = self.pos
                number = self.match(_NUMBER)
            if number is not None:
                if not self.accept("*"):
                    self.fail("expected '%' or '*' after a number" if percent is None
                              else "expected '*' after a count")
                if not _INT.fullmatch(number) or self.integer(number, npos) < 1:
                    self.fail(f"a count must be a whole number >= 1, got {number}", npos)
                count = self.integer(number, npos)
        name, kpos = self.need(_IDENT, "expected a fault kind (off, ENOMEM, speculative_refcount, "
                                       "extra_refcount, tdx_error, ...)")
        kind = self.kind(name, kpos)
        return TermSpec(kind, count, percent)

    def kind(self, name: str, kpos: int) -> Kind:
        low = name.lower()
        if low == "callback":
            self.fail("a callback kind cannot be written as text (use faults.callback())", kpos)
        if low not in PARAM_KINDS and name.upper() not in ERRNO_NAMES:
            self._raise_located(UnknownKind, f"unknown fault kind {name!r}"
                                + suggest(name, [*PARAM_KINDS, *ERRNO_NAMES]), kpos)
        args: list[tuple[str | None, Value, int]] = []
        if self.peek() == "(":
            if low not in PARAM_KINDS:
                self.fail(f"errno kind {name.upper()} takes no arguments (write it without '()')")
            args = self.args()
        return self.build_kind(low if low in PARAM_KINDS else name.upper(), args, kpos)

    def args(self) -> list[tuple[str | None, Value, int]]:
        self.expect("(", "expected '('")
        out: list[tuple[str | None, Value, int]] = []
        if self.accept(")"):
            return out
        while True:
            self.peek()
            apos = self.pos
            key = self.match(_IDENT)
            if key is not None and self.accept("="):
                if any(k == key for k, _, _ in out):
                    self.fail(f"argument {key!r} given twice", apos)
            else:
                self.pos, key = apos, None
                if any(k is not None for k, _, _ in out):
                    self.fail("a positional argument cannot follow a keyword argument", apos)
            out.append((key, self.value(), apos))
            if self.accept(")"):
                return out
            self.expect(",", "expected ',' or ')' in the arguments")

    def value(self) -> Value:
        quote = self.peek()
        start = self.pos
        if quote in ("'", '"'):
            chars: list[str] = []
            i = start + 1
            while i < len(self.text) and self.text[i] != quote:
                if self.text[i] == "\\" and i + 1 < len(self.text):
                    i += 1
                chars.append(self.text[i])
                i += 1
            if i >= len(self.text):
                self.fail("unterminated string", start)
            self.pos = i + 1
            return "".join(chars)
        word = self.match(_WORD)
        if word is None:
            self.fail("expected a value (a number, a word or a quoted string)")
        try:
            return classify_value(word)
        except FaultError as e:  # an integer too long to convert
            self.fail(str(e), start)

    def options(self) -> dict[str, tuple[int | float | None, int]]:
        opts: dict[str, tuple[int | float | None, int]] = {}
        while True:
            key, kpos = self.need(_IDENT, "expected an option (" + ", ".join(OPTIONS) + ")")
            if key not in OPTIONS:
                self.fail(f"unknown option {key!r}" + suggest(key, OPTIONS), kpos)
            if key in opts:
                self.fail(f"option {key!r} given twice", kpos)
            self.expect("=", f"expected '=' after option {key!r}")
            opts[key] = (self.option_value(key), kpos)
            if self.peek() in ("", ";"):
                return opts
            self.expect(",", "expected ',', ';' or the end of the spec")

    def option_value(self, key: str) -> int | float | None:
        self.peek()
        vpos = self.pos
        if key == "probability":
            number = self.match(_NUMBER)
            if number is None or not 0.0 <= float(number) <= 1.0:
                self.fail("probability must be a number between 0 and 1", vpos)
            return float(number)
        if key == "times" and self.match(_INF):
            return None
        number = self.match(_INT)
        if number is None:
            self.fail(f"option {key!r} takes a whole number" + (" or inf" if key == "times" else ""))
        value = self.integer(number, vpos)
        if value < _MINIMUM[key]:
            self.fail(f"option {key!r} must be >= {_MINIMUM[key]}, got {number}", vpos)
        return value

    def rule(self, terms: list[TermSpec], arrows: list[int],
             options: dict[str, tuple[int | float | None, int]]) -> RuleSpec:
        first = min(pos for _, pos in options.values())
        if arrows:
            self.fail("options nth/times/every/skip/probability need a single term, not a chain",
                      arrows[0])
        term = terms[0]
        if isinstance(term.kind, Off):
            self.fail("'off' never fires: it takes no options", first)
        if term.count is not None and "times" in options:
            self.fail("times given twice (as 'N*' and 'times=')", options["times"][1])
        if term.percent is not None and "probability" in options:
            self.fail("probability given twice (as 'P%' and 'probability=')",
                      options["probability"][1])
        got = {k: v for k, (v, _) in options.items() if k in RULE_OPTIONS}
        # times defaults to 1, or to unlimited when every= is given (as faults.inject)
        times = term.count if term.count is not None else got.get("times", None if "every" in got else 1)
        prob = term.percent / 100.0 if term.percent is not None else got.get("probability")
        nth, every, skip = got.get("nth"), got.get("every"), got.get("skip", 0)
        return RuleSpec(nth=_int_or_none(nth), times=_int_or_none(times), every=_int_or_none(every),
                        skip=int(skip or 0), probability=None if prob is None else float(prob))

    # --- kinds --------------------------------------------------------------------------------
    def build_kind(self, name: str, args: list[tuple[str | None, Value, int]], kpos: int) -> Kind:
        cls = PARAM_KINDS.get(name)
        if cls is not None and dataclasses.is_dataclass(cls):
            self._check_args(name, cls, args)
        try:
            return make_kind(name, *[v for k, v, _ in args if k is None],
                             **{k: v for k, v, _ in args if k is not None})
        except UnknownKind as e:
            self._raise_located(UnknownKind, str(e), args[0][2] if args else kpos)
        except (TypeError, ValueError) as e:
            at = next((p for k, _, p in args if k and k in str(e)), args[0][2] if args else kpos)
            self.fail(f"bad arguments for {name}: {e}", at)

    def _check_args(self, name: str, cls: type, args: list[tuple[str | None, Value, int]]) -> None:
        fields, hints = _signature(cls)
        if len([a for a in args if a[0] is None]) > len(fields):
            self.fail(f"{name} takes at most {len(fields)} arguments", args[len(fields)][2])
        for i, (key, value, apos) in enumerate(args):
            field = key if key is not None else fields[i]
            if field not in fields:
                self.fail(f"{name} has no argument {field!r}" + suggest(field, fields), apos)
            if not _accepts(hints[field], value):
                self.fail(f"argument {field!r} of {name} must be {_describe(hints[field])}, "
                          f"got {value!r}", apos)

    def _raise_located(self, cls: type[FaultError], message: str, pos: int) -> NoReturn:
        where = f" (from {self.source})" if self.source else ""
        raise cls(f"{message} at character {pos + 1}{where}:\n{_caret_lines(self.text, pos)}")  # as SpecSyntaxError


@functools.cache
def _signature(cls: type) -> tuple[list[str], dict[str, object]]:
    """A kind class's argument names and their types (resolved once; it is slow)."""
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    return fields, typing.get_type_hints(cls)


def _int_or_none(value: int | float | None) -> int | None:
    return None if value is None else int(value)


def _accepts(hint: object, value: Value) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(h, value) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return hint is str and isinstance(value, str)


def _describe(hint: object) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    names: dict[object, str] = {int: "a whole number", float: "a number", str: "a word",
                                bool: "true or false", type(None): "none"}
    return names.get(hint, str(hint))
