"""Property tests for the grammar: random valid specs parse to what they say and round-trip
through format_spec; random garbage, mutated valid specs and random sequences of the grammar's
own tokens raise only the engine's own errors, located (character and caret) and naming their
source, in bounded time.

The example counts come from the Hypothesis profile (tests/conftest.py: ``dev`` locally, ``ci``
with ``CI=true``)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import faults
from faults import ArmingSpec, RuleSpec, TermSpec, format_spec, parse
from faults.errors import caret_lines
from faults.kinds import Errno, ExtraRefcount, Kind, Off, SpeculativeRefcount, TdxError

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOURCE = "GMEM_FAULTS"
#: Seconds one input may take to parse, plus per character: a parser that backtracks or
#: loops on some input fails here instead of hanging the suite. Milliseconds in practice, and
#: linear (about 15 us a character for the 140,000-character inputs); the bound is generous
#: because CI machines are shared: it catches hangs and blow-ups, it is no speed target.
TIME_BOUND = 5.0
TIME_PER_CHAR = 1e-4

ws = st.sampled_from(["", "", "", " ", "  ", "\t", "\n"])
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
ident = st.builds(lambda a, b: a + b, st.sampled_from(LETTERS),
                  st.text(alphabet=LETTERS + "0123456789", max_size=8))
word = ident.filter(lambda w: w.lower() not in ("none", "true", "false"))


@dataclass
class Piece:
    text: str
    value: object


@st.composite
def values(draw: st.DrawFn) -> Piece:
    kind = draw(st.sampled_from(["int", "word", "quoted"]))
    if kind == "int":
        n = draw(st.integers(-10_000, 10_000))
        return Piece(str(n), n)
    if kind == "word":
        w = draw(word)
        return Piece(w, w)
    s = draw(st.text(max_size=8))
    q = draw(st.sampled_from(['"', "'"]))
    return Piece(q + s.replace("\\", "\\\\").replace(q, "\\" + q) + q, s)


@st.composite
def kinds(draw: st.DrawFn) -> tuple[str, Kind]:
    which = draw(st.sampled_from(["errno", "off", "spec", "extra", "tdx"]))
    mask = draw(st.integers(0, 2**12 - 1))

    def case(name: str) -> str:  # any mix of upper and lower case
        return "".join(c.upper() if mask >> i & 1 else c.lower() for i, c in enumerate(name))

    if which == "errno":
        name = draw(st.sampled_from(["ENOMEM", "EAGAIN", "EIO", "EFAULT", "EINVAL", "EBUSY"]))
        return case(name), Errno(name)
    if which == "off":
        return case("off"), Off()
    if which == "spec":
        refs = draw(st.integers(1, 9))
        hold = draw(st.none() | st.integers(0, 9))
        hold_text = "none" if hold is None else str(hold)
        form = draw(st.sampled_from(["kw", "pos", "refs_only"]))
        w = draw(ws)
        if form == "kw":
            args = f"refs{w}={w}{refs},{w}hold={hold_text}"
        elif form == "pos":
            args = f"{refs},{w}{hold_text}"
        else:
            return f"speculative_refcount(refs={refs})", SpeculativeRefcount(refs)
        return f"speculative_refcount({w}{args}{w})", SpeculativeRefcount(refs, hold)
    if which == "extra":
        refs = draw(st.integers(1, 9))
        return f"extra_refcount(refs={refs})", ExtraRefcount(refs)
    code = draw(st.sampled_from(["TDX_OPERAND_BUSY", "TDX_EPT_WALK_FAILED", "fatal"]))
    return f"tdx_error({code})", TdxError(code)


@st.composite
def terms(draw: st.DrawFn) -> tuple[str, TermSpec]:
    text, kind = draw(kinds())
    percent = None
    count = None
    prefix = ""
    if draw(st.booleans()):
        pct_text = draw(st.sampled_from(["int", "frac"]))
        if pct_text == "int":
            p = draw(st.integers(0, 100))
            prefix += f"{p}{draw(ws)}%{draw(ws)}"
            percent = float(p)
        else:
            whole, frac = draw(st.integers(0, 99)), draw(st.integers(0, 999))
            prefix += f"{whole}.{frac:03d}%"
            percent = float(f"{whole}.{frac:03d}")
    if draw(st.booleans()):
        count = draw(st.integers(1, 10_000))
        prefix += f"{count}{draw(ws)}*{draw(ws)}"
    return prefix + text, TermSpec(kind, count, percent)


@st.composite
def armings(draw: st.DrawFn) -> tuple[str, ArmingSpec]:
    target = draw(st.text(alphabet=LETTERS + "0123456789.*?", min_size=1, max_size=16))
    text = target + draw(ws)
    when: dict[str, object] = {}
    if draw(st.booleans()):
        keys = draw(st.lists(ident, min_size=1, max_size=3, unique=True))
        parts = []
        for k in keys:
            v = draw(values())
            when[k] = v.value
            parts.append(f"{draw(ws)}{k}{draw(ws)}={draw(ws)}{v.text}{draw(ws)}")
        text += "[" + ",".join(parts) + "]" + draw(ws)
    chain = draw(st.lists(terms(), min_size=1, max_size=4))
    text += "=" + draw(ws) + f"{draw(ws)}->{draw(ws)}".join(t for t, _ in chain)
    tspecs = tuple(t for _, t in chain)
    seed = draw(st.none() | st.integers(0, 2**40))
    rule = None
    opts: list[str] = []
    single = tspecs[0]
    if len(chain) == 1 and not isinstance(single.kind, Off) and draw(st.booleans()):
        nth = draw(st.none() | st.integers(1, 50))
        every = draw(st.none() | st.integers(1, 9))
        skip = draw(st.integers(0, 5))
        times = single.count if single.count is not None else draw(st.none() | st.integers(1, 9))
        prob = (single.percent / 100 if single.percent is not None
                else draw(st.none() | st.sampled_from([0.0, 0.25, 0.5, 1.0, 0.125])))
        opts += [f"nth={nth}"] if nth is not None else []
        opts += [f"every={every}"] if every is not None else []
        opts += [f"skip={skip}"] if skip or not opts else []
        if single.count is None:
            opts.append("times=inf" if times is None else f"times={times}")
        if single.percent is None and prob is not None:
            opts.append(f"probability={prob}")
        rule = RuleSpec(nth=nth, times=times, every=every, skip=skip, probability=prob)
        tspecs = (TermSpec(single.kind),)
    if seed is not None:
        opts.append(f"seed={seed}")
    opts = draw(st.permutations(opts))
    if opts:
        text += draw(ws) + "@" + ",".join(f"{draw(ws)}{o}{draw(ws)}" for o in opts)
    spec = ArmingSpec(target, tspecs, rule, tuple(sorted(when.items())), seed)  # type: ignore[arg-type]
    return text, spec


@st.composite
def specs(draw: st.DrawFn) -> tuple[str, list[ArmingSpec]]:
    items = draw(st.lists(armings(), max_size=4))
    seps = [draw(st.sampled_from([";", " ; ", ";;", ";\n"])) for _ in items]
    text = "".join(t + s for (t, _), s in zip(items, seps, strict=True))
    return draw(ws) + text, [s for _, s in items]


@SETTINGS
@given(specs())
def test_valid_specs_parse_to_what_they_say_and_round_trip(case: tuple[str, list[ArmingSpec]]) -> None:
    text, expected = case
    parsed = parse(text)
    assert parsed == expected
    canonical = format_spec(parsed)
    assert parse(canonical) == parsed
    assert format_spec(parse(canonical)) == canonical


GRAMMAR_CHARS = "abpE_.*?[]=,;@%*()->'\"\\ 0123456789\tnthoffenomemsedrfcux"


def check_rejects_properly(text: str, *, arm: bool = False) -> None:
    """``text`` parses (and, with ``arm``, arms in a scratch scope), or raises a
    ``faults.FaultError`` that says where: a character of ``text`` and the source."""
    start = time.perf_counter()
    try:
        try:
            specs = faults.parse(text, source=SOURCE)
            if arm:  # as the plugin arms --gmem-fault and GMEM_FAULTS: from the text
                with faults.scope(inherit=False):
                    faults.arm(text, source=SOURCE)
        finally:
            took = time.perf_counter() - start
    except faults.SpecSyntaxError as e:
        assert e.text == text and e.source == SOURCE
        assert 0 <= e.pos <= len(text)
        assert_located(str(e), text, e.pos)
    except (faults.UnknownPoint, faults.KindNotAllowed) as e:
        # found when arming: the caret is under the arming's target
        assert arm and f"(from {SOURCE})" in str(e), str(e)
        target = next(s.offset for s in specs if str(e).startswith(f"unknown fault point {s.pattern!r}")
                      or f"{s.pattern!r}" in str(e).split("\n")[0])
        assert str(e).endswith(caret_lines(text, target)), str(e)
    except faults.FaultError as e:  # UnknownKind and bad kind arguments: located as syntax errors
        m = re.search(r" at character (\d+) \(from " + SOURCE + r"\):\n", str(e))
        assert m is not None, f"{type(e).__name__} without a position: {e}"
        assert_located(str(e), text, int(m.group(1)) - 1)
    else:
        assert faults.parse(faults.format_spec(specs)) == specs
    assert took < TIME_BOUND + TIME_PER_CHAR * len(text), f"{len(text)} characters took {took:.1f} s"


def assert_located(message: str, text: str, pos: int) -> None:
    """The message names character ``pos`` (counting from 1) and the source, and ends with the
    line holding it and a caret under it."""
    assert 0 <= pos <= len(text)
    assert f"at character {pos + 1} (from {SOURCE}):\n" in message, message
    assert message.endswith(caret_lines(text, pos)), message


@SETTINGS
@given(st.text(alphabet=GRAMMAR_CHARS, max_size=40) | st.text(max_size=20))
@example("p=enomem@nth=99999999999999999999999999")
@example("p=1e999%enomem")
@example("p=speculative_refcount(refs=1.5)")
@example("p=tdx_error(1)")
def test_garbage_raises_only_engine_errors(text: str) -> None:
    check_rejects_properly(text)


@SETTINGS
@given(specs(), st.data())
def test_mutated_valid_specs_raise_only_engine_errors(case: tuple[str, list[ArmingSpec]],
                                                      data: st.DataObject) -> None:
    text, _ = case
    if not text:
        return
    i = data.draw(st.integers(0, len(text) - 1))
    op = data.draw(st.sampled_from(["delete", "insert", "replace"]))
    c = data.draw(st.sampled_from(GRAMMAR_CHARS))
    mutated = {"delete": text[:i] + text[i + 1:], "insert": text[:i] + c + text[i:],
               "replace": text[:i] + c + text[i + 1:]}[op]
    check_rejects_properly(mutated)


# --- grammar-aware: sequences of the grammar's own tokens ---------------------------------------
POINT_NAMES = [p.name for p in faults.catalog()]
#: Every kind of token the parser knows (faults/grammar.py), each with spellings that are valid
#: somewhere and near misses, so that random sequences reach the deep paths (kind arguments,
#: options, limits) and not only the first error.
TOKENS: dict[str, list[str]] = {
    "target": [*POINT_NAMES[:6], "kvm_gmem_*", "*", "?", "p", "a.b", "tdh_mem_page_remove", "x.", "1p"],
    "punct": ["=", ";", "[", "]", ",", "@", "->", "-", ">", "%", "*", "(", ")", ":", "/"],
    "kind": ["off", "OFF", "ENOMEM", "enomem", "eagain", "EIO", "EWOULDBLOCK", "enomen", "callback",
             "speculative_refcount", "extra_refcount", "tdx_error", "Tdx_Error", "kind", "E2BIG"],
    "arg": ["refs", "hold", "code", "ref", "fatal", "TDX_OPERAND_BUSY", "TDX_NOPE", "none", "true", "False"],
    "option": ["nth", "times", "every", "skip", "probability", "seed", "nht", "inf", "INF", "infinity"],
    "key": ["phase", "index", "folio_order", "when", "_k"],
    "number": ["0", "1", "2", "3", "100", "101", "1.5", ".5", "5.", "1e3", "1e999", "-1", "+2",
               "0.25", "99999999999999999999", "007", "1e-3", "1E+2"],
    "value": ["rollback", "forward", "2M", "a/b", "x:y", "'a b'", '"q\\"x"', "'unterminated", '""',
              "none", "true", "-0.5", "nan", "inf"],
    "space": [" ", "\t", "\n", "  "],
}
token = st.sampled_from(sorted(TOKENS)).flatmap(lambda k: st.sampled_from(TOKENS[k]))


@st.composite
def almost_armings(draw: st.DrawFn) -> str:
    """The shape of an arming, each piece drawn from the right tokens most of the time."""
    def piece(kind: str, other: float = 0.15) -> str:
        if draw(st.floats(0, 1)) < other:
            return draw(token)
        return draw(st.sampled_from(TOKENS[kind]))

    text = piece("target")
    if draw(st.booleans()):
        pairs = [piece("key") + piece("punct", 0.9) if False else piece("key") + "=" + piece("value")
                 for _ in range(draw(st.integers(1, 3)))]
        text += "[" + ",".join(pairs) + draw(st.sampled_from(["]", "]", "", ","]))
    text += draw(st.sampled_from(["=", "=", "=", "", "=="]))
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        t = ""
        if draw(st.booleans()):
            t += piece("number") + draw(st.sampled_from(["%", "*", "", "%%"]))
        if draw(st.booleans()):
            t += piece("number") + "*"
        t += piece("kind")
        if draw(st.booleans()):
            args = [draw(st.sampled_from(["", piece("arg") + "="])) + draw(st.sampled_from(
                [piece("number"), piece("arg"), piece("value")])) for _ in range(draw(st.integers(0, 3)))]
            t += "(" + ",".join(args) + draw(st.sampled_from([")", ")", "", ",)"]))
        terms.append(t)
    text += draw(st.sampled_from(["->", "->", "-> ", "-", ">"])).join(terms)
    if draw(st.booleans()):
        opts = [piece("option") + draw(st.sampled_from(["=", "=", ""])) + draw(st.sampled_from(
            [piece("number"), piece("option"), piece("value")])) for _ in range(draw(st.integers(1, 3)))]
        text += "@" + ",".join(opts)
    return text


@SETTINGS
@given(st.lists(almost_armings(), min_size=1, max_size=3), st.lists(st.tuples(st.integers(0, 200), token), max_size=3),
       st.sampled_from(["", " ", "\n"]))
def test_token_sequences_raise_only_located_engine_errors(armings: list[str], noise: list[tuple[int, str]],
                                                          sep: str) -> None:
    text = (";" + sep).join(armings)
    for at, tok in noise:  # a few tokens in the wrong place
        at %= len(text) + 1
        text = text[:at] + tok + text[at:]
    check_rejects_properly(text, arm=True)


@SETTINGS
@given(st.lists(token, max_size=30).map("".join))
def test_raw_token_soup_raises_only_located_engine_errors(text: str) -> None:
    check_rejects_properly(text, arm=True)


@pytest.mark.parametrize("text", [
    "p=" + "1*off->" * 20_000 + "enomem",
    "p[" + ",".join(f"k{i}=v" for i in range(20_000)) + "]=enomem",
    ";" * 100_000,
    " " * 100_000 + "p=enomem@nth=",
    "p=" + "9" * 50_000 + "*enomem",
    "p=enomem@seed=" + "9" * 50_000,
    "p=speculative_refcount(" + "'" + "\\'" * 30_000,
])
def test_long_inputs_are_parsed_or_rejected_in_bounded_time(text: str) -> None:
    check_rejects_properly(text)
