"""Property tests for the grammar: random valid specs parse to what they say and round-trip
through format_spec; random garbage raises only the engine's own errors."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import faults
from faults import ArmingSpec, RuleSpec, TermSpec, format_spec, parse
from faults.kinds import Errno, ExtraRefcount, Kind, Off, SpeculativeRefcount, TdxError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

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


@SETTINGS
@given(st.text(alphabet=GRAMMAR_CHARS, max_size=40) | st.text(max_size=20))
@example("p=enomem@nth=99999999999999999999999999")
@example("p=1e999%enomem")
@example("p=speculative_refcount(refs=1.5)")
@example("p=tdx_error(1)")
def test_garbage_raises_only_engine_errors(text: str) -> None:
    try:
        parse(text)
    except faults.SpecSyntaxError as e:
        assert 0 <= e.pos <= len(text)
        assert e.text == text
    except faults.FaultError:
        pass


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
    try:
        parse(mutated)
    except faults.SpecSyntaxError as e:
        assert 0 <= e.pos <= len(mutated)
    except faults.FaultError:
        pass
