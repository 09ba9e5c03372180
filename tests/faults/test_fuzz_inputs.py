"""Fuzzing the plugin's inputs: marker arguments and the settings' sources.

Every marker's arguments go through what the plugin does with them at setup (bind, check,
build the armings, arm them in a scratch scope, write them as text; ``gmem_params``,
``allow_patterns``, ``sweep_spec``), and random command-line / environment / ini values through
``config.resolve`` and the session faults' validation. Each input is either accepted or
rejected with the plugin's own error (``ConfigError``, ``SweepError`` for ``fault_sweep``)
naming where it came from, and a fault spec's syntax error names its character; never another
exception, and in bounded time. The grammar itself is fuzzed in test_faults_grammar_props.py.

The example counts come from the Hypothesis profile (tests/conftest.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import faults
from pytest_gmem import config as cfg
from pytest_gmem.revisions import revision_names
from pytest_gmem.sweep import SweepError, sweep_spec

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIME_BOUND = 5.0  # seconds for one input (milliseconds in practice; generous: CI machines are shared)
WHERE = "test_fuzz"

POINTS = [p.name for p in faults.catalog()]
#: Strings that mean something to one argument or another (and near misses), so that random
#: argument lists get past the first check often.
WORDS = [
    *POINTS[:8], "kvm_gmem_*", "*", "tdh_*", "nope", "kvm_gmem_shareability_stor", "",
    "ENOMEM", "enomem", "EAGAIN", "off", "speculative_refcount(hold=3)", "tdx_error(fatal)", "extra_refcount",
    "TDX_OPERAND_BUSY", "fatal", "TDX_NOPE", "bug-vm", "leak",
    *revision_names(), "fixd", "4K", "2M", "1G", "3M", "4M", "2MiB", "1.5M", "0", "-2M", "8K", "16K",
    "sw_protected", "tdx", "clean", "warn", "any", "kernel-bug", "success",
    "p=enomem", "kvm_gmem_convert_compute_work=1*off->1*enomem", "kvm_gmem_convert_compute_work=enomem@nth=",
    "kvm_gmem_has_safe_refcount[phase=check]=speculative_refcount(refs=2)", "x=enomem; y=",
    "WARN.*rollback", "(", "a{4294967296}", "[z-a]", "(" * 200 + ")" * 200, "\\N{nope}", "(?P<x>a)(?P<x>b)",
    "rollback", "forward", "check",
]
KEYS = [
    "point", "nth", "times", "refs", "hold", "error", "spec", "points", "kinds", "max_nth", "depth", "expect",
    "pattern", "size", "page_size", "mmap", "init_private", "vm_type", "tdx_fatal_policy", "revision",
    "hugetlb", "check", "when", "phase", "index", "nht", "tims", "sizes", "_x",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 6), st.integers(), st.integers(10**4300, 10**4400),
    st.floats(), st.text(max_size=10), st.sampled_from(WORDS), st.just(object()),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["2M", "1G", "4K", "phase", "index", 2]), inner, max_size=3),
        st.frozensets(st.sampled_from(WORDS), max_size=3),
    ),
    max_leaves=6,
)
arguments = st.tuples(st.lists(values, max_size=4), st.dictionaries(st.sampled_from(KEYS), values, max_size=4))
sweep_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 6), st.integers(-(10**30), 10**30), st.floats(),
              st.text(max_size=10), st.sampled_from(WORDS), st.just(object())),
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple)
    | st.frozensets(st.sampled_from(WORDS), max_size=3),
    max_leaves=6,
)
#: fault_sweep's arguments are read by pytest_gmem/sweep.py, whose messages cannot show an
#: integer of more than 4300 digits (test_fault_sweep_with_an_unprintable_integer): none here.
sweep_arguments = st.tuples(st.lists(sweep_values, max_size=5),
                            st.dictionaries(st.sampled_from(KEYS), sweep_values, max_size=4))


def known() -> list[str]:
    return list(revision_names())


def run_marker(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """What the plugin does with one marker at setup (and, for fault markers, at arming)."""
    where = f"marker {name} on {WHERE}"
    if name == "gmem":
        params = cfg.gmem_params([(args, kwargs)], where, known)
        params.pools()
        params.vm_options()
        cfg.describe_params(params)
    elif name == "allow_warn":
        cfg.allow_patterns([(args, kwargs)], where)
    elif name == "fault_sweep":
        sweep_spec(args, kwargs, where)
    else:
        requests = cfg.marker_requests(name, args, kwargs, where)
        cfg.validate(requests)
        with faults.scope(inherit=False):
            for req in requests:
                req.arm()
                req.text()


def check_marker(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    start = time.perf_counter()
    try:
        try:
            run_marker(name, args, kwargs)
        finally:
            took = time.perf_counter() - start
    except (cfg.ConfigError, SweepError) as e:
        if name == "fault_sweep":
            assert isinstance(e, SweepError)
        else:
            assert isinstance(e, cfg.ConfigError)
        assert f"marker {name} on {WHERE}" in str(e), str(e)
        spec = _spec_argument(name, args, kwargs)
        if spec is not None:
            try:
                faults.parse(spec)
            except faults.SpecSyntaxError as syntax:  # the marker's error keeps the character
                assert f"at character {syntax.pos + 1} " in str(e), str(e)
    assert took < TIME_BOUND, f"marker {name}{args!r}{kwargs!r} took {took:.1f} s"


def _spec_argument(name: str, args: list[Any], kwargs: Mapping[str, Any]) -> str | None:
    """The spec string of a well-formed ``fault(spec)`` marker, if it is one."""
    if name != "fault":
        return None
    given = [*args, *kwargs.values()] if set(kwargs) <= {"spec"} else []
    if len(given) == 1 and isinstance(given[0], str) and given[0].strip():
        return given[0].strip()
    return None


@pytest.mark.parametrize("name", list(cfg.MARKERS))
@FUZZ
@given(data=st.data())
def test_marker_arguments_are_accepted_or_rejected_with_the_plugins_error(name: str, data: st.DataObject) -> None:
    args, kwargs = data.draw(arguments if name != "fault_sweep" else sweep_arguments, label="args, kwargs")
    check_marker(name, args, kwargs)


def test_every_marker_is_fuzzed() -> None:
    assert set(cfg.MARKERS) == {"gmem", "enomem", "speculative_refcount", "tdx_unmap_failure", "fault",
                                "fault_sweep", "allow_warn"}


# Found by the fuzz test above; each raised something other than ConfigError before the fix.
HUGE = 10**5000


@pytest.mark.parametrize(("name", "args", "kwargs", "message"), [
    ("allow_warn", ["a{4294967296}"], {}, "invalid regular expression 'a{4294967296}': the repetition number"),
    ("allow_warn", ["(" * 2000], {}, "invalid regular expression '((("),
    ("enomem", ["kvm_gmem_convert_compute_work"], {"nth": HUGE}, "argument 'nth' is an integer of more than"),
    ("enomem", ["kvm_gmem_convert_compute_work"], {"index": HUGE}, "argument 'index' is an integer of more than"),
    ("speculative_refcount", ["kvm_gmem_has_safe_refcount"], {"refs": -HUGE}, "argument 'refs' is an integer"),
    ("gmem", [], {"hugetlb": {"2M": HUGE}}, "argument 'hugetlb' is an integer of more than"),
    ("gmem", [], {"size": "9" * 5000 + "M"}, "larger than the largest file (2^63 - 1 bytes, loff_t)"),
    ("gmem", [], {"size": 1 << 64}, "larger than the largest file"),
    ("fault", ["kvm_gmem_convert_compute_work=enomem@nth=" + "9" * 5000], {}, "at character 42 (from marker fault"),
], ids=["regex-overflow", "regex-recursion", "huge-nth", "huge-filter", "huge-refs", "huge-pool", "huge-size-text",
        "huge-size", "huge-nth-in-spec"])
def test_fuzz_findings_are_config_errors(name: str, args: list[Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(cfg.ConfigError, match=re.escape(message)) as e:
        run_marker(name, args, kwargs)
    assert f"marker {name} on {WHERE}" in str(e.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"depth": HUGE}, "depth must be 1 or 2, got an integer of more than"),
    ({"max_nth": HUGE}, "max_nth must be an integer >= 1 or None, got an integer of more than"),
    ({"points": [HUGE]}, "points must be a glob or a sequence of globs, got a list holding an integer of more than"),
    ({"kinds": (HUGE,)}, "a kind must be a string in the fault grammar, got an integer of more than"),
    ({"expect": [HUGE]}, "unknown outcome(s) a list holding an integer of more than"),
], ids=["depth", "max_nth", "points", "kinds", "expect"])
def test_fault_sweep_with_an_unprintable_integer(kwargs: dict[str, Any], message: str) -> None:
    # an integer too long for Python to write as text used to raise ValueError from the message
    with pytest.raises(SweepError, match=re.escape(f"marker fault_sweep on test_fuzz: {message}")):
        sweep_spec([], kwargs, "marker fault_sweep on test_fuzz")


# --- settings from the command line, the environment and the ini file ----------------------------
setting_text = st.one_of(st.sampled_from(WORDS), st.text(max_size=12), st.integers(-5, 2**40).map(str),
                         st.sampled_from(["0x10", "0x", "-0", " 7 ", "9" * 5000, "1e3"]))
fault_lists = st.lists(st.sampled_from(WORDS) | st.text(max_size=12), max_size=3)
SOURCES = {"gmem_faults": ("--gmem-fault", "GMEM_FAULTS", "ini gmem_faults"),
           "gmem_revision": ("--gmem-revision", "GMEM_REVISION", "ini gmem_revision"),
           "gmem_seed": ("--gmem-seed", "GMEM_SEED", "ini gmem_seed")}


@FUZZ
@given(cli=st.fixed_dictionaries({}, optional={"gmem_revision": setting_text, "gmem_seed": setting_text,
                                               "gmem_faults": fault_lists, "gmem_report": setting_text}),
       env=st.fixed_dictionaries({}, optional={"GMEM_REVISION": setting_text, "GMEM_SEED": setting_text,
                                               "GMEM_FAULTS": setting_text, "GMEM_REPORT": setting_text}),
       ini=st.fixed_dictionaries({}, optional={"gmem_revision": setting_text, "gmem_seed": setting_text,
                                               "gmem_faults": fault_lists}))
def test_settings_are_resolved_or_rejected_naming_their_source(
        cli: dict[str, Any], env: dict[str, str], ini: dict[str, Any]) -> None:
    start = time.perf_counter()
    try:
        try:  # what pytest_configure does
            settings_ = cfg.resolve(cli, env, ini, known_revisions=known, random_seed=lambda: 7)
            requests = [cfg.ArmRequest(source=f.source, spec=f.text) for f in settings_.faults]
            cfg.validate(requests)
            [r.text() for r in requests]
        finally:
            took = time.perf_counter() - start
    except cfg.ConfigError as e:
        sources = [s for names in SOURCES.values() for s in names]
        assert any(s in str(e) for s in sources), str(e)
        m = re.search(r"from (--gmem-fault|GMEM_FAULTS|ini gmem_faults)\)", str(e))
        if m and "at character" not in str(e):  # a fault spec's error: unknown point or kind
            assert "fault point" in str(e) or "can produce" in str(e), str(e)
    else:
        assert settings_.revision in revision_names() and settings_.seed >= 0
    assert took < TIME_BOUND, f"settings {cli!r} {env!r} {ini!r} took {took:.1f} s"
