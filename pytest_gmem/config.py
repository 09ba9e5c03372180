"""Settings of the gmem plugin: where each value comes from, and marker arguments.

Nothing here imports pytest. The plugin hands in plain mappings (command line, environment,
ini file) and gets back frozen values; a bad value raises :class:`ConfigError` naming the
value and where it came from ("from --gmem-revision", "from GMEM_FAULTS", "from marker
enomem on test_x").

Precedence, for every setting: command line > environment > ini file > default. A marker on
the test wins over all of them for that test (``gmem(revision=...)``).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faults
from faults.errors import suggest

from .revisions import DEFAULT_REVISION, revision_names
from .sizes import parse_size

# --- option names, environment variables, ini keys, help texts --------------------------------
#: (command line, environment variable, ini key) per setting.
REVISION = ("--gmem-revision", "GMEM_REVISION", "gmem_revision")
FAULTS = ("--gmem-fault", "GMEM_FAULTS", "gmem_faults")
SEED = ("--gmem-seed", "GMEM_SEED", "gmem_seed")
REPORT = ("--gmem-report", "GMEM_REPORT", "gmem_report")
STRICT = ("--gmem-strict-faults", "GMEM_STRICT_FAULTS", "gmem_strict_faults")

#: The revisions, from their one registry (:mod:`pytest_gmem.revisions`).
FALLBACK_REVISIONS = revision_names()

REVISION_HELP = (
    f"Kernel behaviour the model follows for every test: one of {', '.join(FALLBACK_REVISIONS)} "
    "(env GMEM_REVISION, ini gmem_revision; marker gmem(revision=...) wins). "
    f"Default: {DEFAULT_REVISION!r}."
)
FAULT_HELP = (
    "Arm a fault for every test, in the fault grammar, e.g. "
    "'kvm_gmem_shareability_store=1*off->1*enomem'. Repeatable. Replaces GMEM_FAULTS "
    "(';'-separated) and ini gmem_faults (one per line). Default: none."
)
SEED_HELP = (
    "Session seed; each test's seed is derived from it and the test's node id "
    "(env GMEM_SEED, ini gmem_seed). Default: a random seed, printed in the header."
)
FULL_TRACE_HELP = (
    "Keep the frames of pytest_gmem and faults in failure tracebacks. Default: off (a failure "
    "with an error the library raises on purpose, such as GmemError or KernelBug, stops at the "
    "test's own line; an unexpected exception inside the library always shows every frame)."
)
DETERMINISM_HELP = (
    "Run every test (every sweep scenario) twice with the same seed and fail it when the two "
    "runs differ: the fault points reached, their contexts, the faults fired, the problems "
    "found. Twice as slow. Default: off."
)
STRICT_HELP = (
    "Fail a test in which a fault armed by its markers or the faults fixture never fired (the "
    "failure says why: the point's preconditions, nth, filter). Faults armed for the whole run "
    "(--gmem-fault, GMEM_FAULTS) are exempt. Env GMEM_STRICT_FAULTS, ini gmem_strict_faults "
    "(1/true/yes/on). Default: off (never-fired faults are listed with -v and in the JSON report)."
)
POINTS_HELP = "Print the fault-point catalog (name, kinds, description) and exit."
REPORT_HELP = (
    "Write a JSON report to PATH: per test the faults armed and fired and the outcome; per "
    "fault point the tests that reached it and fired it (env GMEM_REPORT, ini gmem_report). "
    "Default: no report."
)
SWEEP_HELP = "Run every test that uses the model once per reachable fault (point, kind, nth). Default: off."


class ConfigError(ValueError):
    """A bad setting or marker argument; the message names the value and its source."""


# --- session settings ---------------------------------------------------------------------
@dataclass(frozen=True)
class FaultText:
    """One fault in the text grammar, with where it came from."""

    text: str
    source: str


@dataclass(frozen=True)
class Settings:
    """The plugin's session-wide settings, resolved once."""

    revision: str = DEFAULT_REVISION
    revision_source: str = "default"
    faults: tuple[FaultText, ...] = ()
    seed: int = 0
    seed_source: str = "default"
    report: str | None = None
    report_source: str = "default"
    strict_faults: bool = False
    strict_source: str = "default"


def _pick(cli: Any, env: str | None, ini: Any, names: tuple[str, str, str]) -> tuple[Any, str]:
    """The first value given, by precedence, and its source label."""
    if cli not in (None, "", [], ()):
        return cli, names[0]
    if env not in (None, ""):
        return env, names[1]
    if ini not in (None, "", [], ()):
        return ini, f"ini {names[2]}"
    return None, "default"


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(value: object, source: str) -> bool:
    """A switch from the environment or an ini file: 1/true/yes/on or 0/false/no/off."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"invalid value {value!r} from {source}: expected one of {', '.join(_TRUE + _FALSE)}")


def parse_seed(value: object, source: str) -> int:
    """A seed is a non-negative integer (decimal or 0x hex)."""
    try:
        seed = int(str(value).strip(), 0)
    except ValueError:
        raise ConfigError(f"invalid seed {value!r} from {source}: expected a non-negative integer") from None
    if seed < 0:
        raise ConfigError(f"invalid seed {value!r} from {source}: expected a non-negative integer")
    return seed


def check_revision(value: object, source: str, known: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in known:
        raise ConfigError(
            f"unknown revision {value!r} from {source}; known: {', '.join(known)}" + suggest(str(value), known)
        )
    return value


def split_faults(value: object, source: str) -> list[FaultText]:
    """The faults one source gives: a list (command line, ini lines) or one string
    (``GMEM_FAULTS``, ';'-separated armings are kept together: the grammar splits them)."""
    items: Iterable[object] = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        text = str(item).strip()
        if text:
            out.append(FaultText(text, source))
    return out


def resolve(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    ini: Mapping[str, Any],
    *,
    known_revisions: Callable[[], Sequence[str]],
    random_seed: Callable[[], int],
    fallback_seed: tuple[int, str] | None = None,
) -> Settings:
    """Resolve the settings. ``cli`` and ``ini`` are keyed by the ini key names
    (``gmem_revision``...). ``known_revisions`` is only called when a revision is given,
    so a default run does not import the model. ``fallback_seed`` (a seed and its source, such
    as pytest-randomly's) is the session seed when none is given, before a random one."""
    rev, rev_src = _pick(cli.get("gmem_revision"), env.get(REVISION[1]), ini.get("gmem_revision"), REVISION)
    revision = DEFAULT_REVISION if rev is None else check_revision(rev, f"{rev_src}", known_revisions())
    flt, flt_src = _pick(cli.get("gmem_faults"), env.get(FAULTS[1]), ini.get("gmem_faults"), FAULTS)
    fault_texts = tuple(split_faults(flt, flt_src)) if flt is not None else ()
    sd, sd_src = _pick(cli.get("gmem_seed"), env.get(SEED[1]), ini.get("gmem_seed"), SEED)
    if sd is None and fallback_seed is not None:
        sd, sd_src = fallback_seed
    seed = random_seed() if sd is None else parse_seed(sd, sd_src)
    rp, rp_src = _pick(cli.get("gmem_report"), env.get(REPORT[1]), ini.get("gmem_report"), REPORT)
    st, st_src = _pick(cli.get("gmem_strict_faults") or None, env.get(STRICT[1]), ini.get("gmem_strict_faults"),
                       STRICT)
    return Settings(
        revision=revision,
        revision_source=rev_src,
        faults=fault_texts,
        seed=seed,
        seed_source="random" if sd is None else sd_src,
        report=None if rp is None else str(rp),
        report_source=rp_src,
        strict_faults=False if st is None else parse_bool(st, st_src),
        strict_source=st_src,
    )


def check_report_path(path: str, source: str) -> None:
    """The JSON report can be written at ``path`` (checked at configure time, so that a bad
    path stops the run before any test instead of failing after all of them)."""
    import os

    full = os.path.abspath(path)
    where = f"cannot write the JSON report to {path!r} (from {source})"
    if os.path.isdir(full):
        raise ConfigError(f"{where}: it is a directory; give a file path such as {os.path.join(path, 'gmem.json')!r}")
    parent = os.path.dirname(full)
    if not os.path.isdir(parent):
        raise ConfigError(f"{where}: the directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK) or (os.path.exists(full) and not os.access(full, os.W_OK)):
        raise ConfigError(f"{where}: permission denied")


def seed_for(session_seed: int, nodeid: str) -> int:
    """A test's own seed: stable for a node id whatever else is selected, and under xdist."""
    import zlib

    return (session_seed + zlib.crc32(nodeid.encode())) % (1 << 32)


# --- markers ------------------------------------------------------------------------------
# The marker signatures, as functions so ``inspect.signature().bind`` checks the arguments.
def _sig_gmem(
    *,
    size: int | str = "4M",
    page_size: str = "2M",
    mmap: bool = True,
    init_private: bool = False,
    vm_type: str = "sw_protected",
    tdx_fatal_policy: str | None = None,
    revision: str | None = None,
    hugetlb: Mapping[str, int] | None = None,
    check: bool = True,
) -> None: ...


def _sig_enomem(point: str, nth: int = 1, times: int | None = 1, **when: Any) -> None: ...


def _sig_speculative_refcount(
    point: str, refs: int = 1, hold: int | None = None, nth: int = 1, times: int | None = 1, **when: Any
) -> None: ...


def _sig_tdx_unmap_failure(
    point: str = "tdh_mem_page_remove", error: str = "TDX_OPERAND_BUSY", nth: int = 1, times: int | None = 1
) -> None: ...


def _sig_fault(spec: str) -> None: ...


def _sig_fault_sweep(points: str | Sequence[str] = "*", kinds: Sequence[str] = ("ENOMEM",),
                     max_nth: int | None = None, depth: int = 1, expect: Sequence[str] = ()) -> None: ...


def _sig_allow_warn(pattern: str) -> None: ...


@dataclass(frozen=True)
class Marker:
    """One marker, defined once: its name, ``pytest --markers`` text (the signature, then what
    it does), the function whose signature checks its arguments, and, for a fault marker, how
    its bound arguments become armings (``requests(values, where)``)."""

    name: str
    help: str
    signature: Callable[..., None]
    requests: Callable[[dict[str, Any], str], list[ArmRequest]] | None = None

    @property
    def fault(self) -> bool:
        return self.requests is not None


def _req_fault(v: dict[str, Any], where: str) -> list[ArmRequest]:
    spec = v["spec"]
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{where}: spec must be a non-empty string in the fault grammar, got {spec!r}")
    return [ArmRequest(source=where, spec=spec.strip())]


def _check_point_rule(v: dict[str, Any], where: str) -> None:
    """The arguments every point-and-rule fault marker shares: nth, times, point."""
    for name in ("nth", "times"):
        value = v.get(name)
        if value is None and name == "times":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: {name} must be an integer >= 1, got {value!r}")
    point = v["point"]
    if not isinstance(point, str) or not point:
        raise ConfigError(f"{where}: point must be a fault point name or glob, got {point!r}")


def _req_enomem(v: dict[str, Any], where: str) -> list[ArmRequest]:
    _check_point_rule(v, where)
    return [ArmRequest(where, v["point"], "ENOMEM", (), v["nth"], v["times"], v.get("when"))]


def _req_speculative_refcount(v: dict[str, Any], where: str) -> list[ArmRequest]:
    _check_point_rule(v, where)
    refs, hold = v["refs"], v["hold"]
    if isinstance(refs, bool) or not isinstance(refs, int) or refs < 1:
        raise ConfigError(f"{where}: refs must be an integer >= 1, got {refs!r}")
    if hold is not None and (isinstance(hold, bool) or not isinstance(hold, int) or hold < 0):
        raise ConfigError(f"{where}: hold must be an integer >= 0 or None, got {hold!r}")
    args_ = (("refs", refs), ("hold", hold))
    return [ArmRequest(where, v["point"], "speculative_refcount", args_, v["nth"], v["times"], v.get("when"))]


def _req_tdx_unmap_failure(v: dict[str, Any], where: str) -> list[ArmRequest]:
    _check_point_rule(v, where)
    if not isinstance(v["error"], str) or not v["error"].strip():
        raise ConfigError(
            f"{where}: error must be a TDX error name such as 'TDX_OPERAND_BUSY', or 'fatal'; got {v['error']!r}"
        )
    return [ArmRequest(where, v["point"], "tdx_error", (("code", v["error"]),), v["nth"], v["times"], None)]


MARKERS: dict[str, Marker] = {m.name: m for m in (
    Marker("gmem", (
        "gmem(size='4M', page_size='2M', mmap=True, init_private=False, vm_type='sw_protected', "
        "tdx_fatal_policy=None, revision=None, hugetlb=None, check=True): how the gmem_host, gmem_vm "
        "and gmem fixtures "
        f"are built; revision=None means --gmem-revision (default {DEFAULT_REVISION!r}); hugetlb=None means "
        "{'2M': 64, '1G': 4}, grown to fit the file; check=False skips the after-test "
        "host.check() and WARN check. Nearest marker wins, per argument."
    ), _sig_gmem),
    Marker("enomem", (
        "enomem(point, nth=1, times=1, **when): the fault point (name or glob) fails with ENOMEM "
        "on its nth hit during the test body, times times; extra keywords filter the hits by "
        "context, e.g. phase='rollback' (or when={'phase': 'rollback'}). Markers accumulate."
    ), _sig_enomem, _req_enomem),
    Marker("speculative_refcount", (
        "speculative_refcount(point, refs=1, hold=None, nth=1, times=1, **when): transient extra "
        "references on the folio at that point, dropped after hold spins (None: held until the "
        "test body ends)."
    ), _sig_speculative_refcount, _req_speculative_refcount),
    Marker("tdx_unmap_failure", (
        "tdx_unmap_failure(point='tdh_mem_page_remove', error='TDX_OPERAND_BUSY', nth=1, times=1): "
        "the TDX module refuses the S-EPT removal; error='fatal' for a non-retryable error."
    ), _sig_tdx_unmap_failure, _req_tdx_unmap_failure),
    Marker("fault", (
        "fault(spec): arm any fault in the text grammar for the test body, e.g. "
        "fault('kvm_gmem_shareability_store=1*off->1*enomem'). Markers accumulate."
    ), _sig_fault, _req_fault),
    Marker("fault_sweep", (
        "fault_sweep(points='*', kinds=('ENOMEM',), max_nth=None, depth=1, expect=()): run the test "
        "once per reachable (point, kind, nth), each its own item test_x[sweep-POINT-KIND-NTH]; kinds in "
        "the fault grammar ('speculative_refcount(hold=3)'); depth=2 adds a second fault in the rollback "
        "phase; expect: outcomes reported as xfail, not failures. See docs/sweeps.md."
    ), _sig_fault_sweep),
    Marker("allow_warn", (
        "allow_warn(pattern): a kernel WARN whose location or message matches the regular "
        "expression does not fail the test. Markers accumulate."
    ), _sig_allow_warn),
)}
#: Views of :data:`MARKERS` the plugin reads (``pytest --markers`` lines, the fault markers).
MARKER_HELP = {name: m.help for name, m in MARKERS.items()}
FAULT_MARKERS = tuple(name for name, m in MARKERS.items() if m.fault)
SIGNATURES: dict[str, inspect.Signature] = {name: inspect.signature(m.signature) for name, m in MARKERS.items()}

PAGE_SIZES = ("4K", "2M", "1G")
VM_TYPES = ("sw_protected", "tdx")


def bind(marker: str, args: Sequence[Any], kwargs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Bind a marker's arguments to its signature; ``where`` is "marker X on test_y"."""
    sig = SIGNATURES[marker]
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        names = [p for p in sig.parameters if sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]
        extra = [k for k in kwargs if k not in sig.parameters]
        hint = suggest(extra[0], names) if extra else ""
        raise ConfigError(f"{where}: {exc}{hint}; signature: {MARKER_HELP[marker].split(':')[0]}") from None
    for name, value in bound.arguments.items():
        if sig.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:  # context filters, by key
            for key, v in value.items():
                _check_printable(v, key, where)
        else:
            _check_printable(value, name, where)
    bound.apply_defaults()
    values = dict(bound.arguments)
    when = dict(values.pop("when", None) or {})
    # when={...}, as faults.inject takes it, lands in **when under the key "when": merge it
    # with the keyword filters instead of filtering on a context key named "when".
    given = when.pop("when", None)
    if when:
        # A context filter that looks like a misspelt argument would silently never match.
        names = [p for p in sig.parameters if p != "when"]
        for key in when:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            if close:
                raise ConfigError(
                    f"{where}: unexpected argument {key!r} (did you mean {close[0]!r}?); extra keyword "
                    "arguments are context filters"
                )
    if given is not None:
        if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
            raise ConfigError(
                f"{where}: when must be a mapping of context keys to values, e.g. when={{'phase': 'rollback'}}; "
                f"got {given!r}"
            )
        for key, value in given.items():
            if key in when and when[key] != value:
                raise ConfigError(
                    f"{where}: context filter {key!r} given twice with different values: "
                    f"{key}={when[key]!r} and when={{{key!r}: {value!r}}}"
                )
            when[key] = value
    if when:
        values["when"] = when
    return values


def _check_printable(value: object, name: str, where: str, depth: int = 0) -> None:
    """An integer of more digits than Python writes as text (``sys.get_int_max_str_digits()``,
    4300 by default) would make every message and report about the argument raise ValueError."""
    if isinstance(value, int) and not isinstance(value, bool):
        limit = sys.get_int_max_str_digits()
        if limit and abs(value) >= _ten_to(limit):
            raise ConfigError(f"{where}: argument {name!r} is an integer of more than {limit} digits")
    elif depth < 8 and isinstance(value, Mapping):
        for k, v in value.items():
            _check_printable(k, name, where, depth + 1)
            _check_printable(v, name, where, depth + 1)
    elif depth < 8 and isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _check_printable(v, name, where, depth + 1)


@functools.cache
def _ten_to(n: int) -> int:
    return int(10**n)


@dataclass(frozen=True)
class GmemParams:
    """How the model fixtures are built for one test (the ``gmem`` marker over defaults)."""

    size: int | str = "4M"
    page_size: str = "2M"
    mmap: bool = True
    init_private: bool = False
    vm_type: str = "sw_protected"
    tdx_fatal_policy: str | None = None
    revision: str | None = None
    revision_source: str = "default"
    hugetlb: Mapping[str, int] | None = None
    check: bool = True

    def vm_options(self, vm_type: str | None = None) -> dict[str, Any]:
        """Keyword arguments of ``host.create_vm`` for this test (``vm_type`` overrides)."""
        options: dict[str, Any] = {"vm_type": vm_type or self.vm_type}
        if options["vm_type"] == "tdx" and self.tdx_fatal_policy is not None:
            options["tdx_fatal_policy"] = self.tdx_fatal_policy
        return options

    def pools(self) -> dict[str, int]:
        """HugeTLB pools for the host: the marker's ``hugetlb``, else :data:`DEFAULT_POOLS`
        grown so that the marker's file fits."""
        if self.hugetlb is not None:
            return dict(self.hugetlb)
        pools = dict(DEFAULT_POOLS)
        if self.page_size in pools:
            need = -(-size_bytes(self.size) // size_bytes(self.page_size))
            pools[self.page_size] = max(pools[self.page_size], need)
        return pools


#: ``host.create_vm(vm_type="tdx", tdx_fatal_policy=...)`` values.
TDX_FATAL_POLICIES = ("bug-vm", "leak")
#: The largest file size the kernel has (``loff_t``): a larger marker size is refused.
MAX_FILE_SIZE = (1 << 63) - 1
#: HugeTLB pools of a host when the ``gmem`` marker gives none.
DEFAULT_POOLS = {"2M": 64, "1G": 4}


def size_bytes(size: int | str, what: str = "size", where: str = "") -> int:
    """Bytes of a size in the one grammar (:mod:`pytest_gmem.sizes`); ConfigError naming the
    value and ``where`` it came from otherwise."""
    try:
        return parse_size(size, what)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None



def gmem_params(
    markers: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
    where: str,
    known_revisions: Callable[[], Sequence[str]],
) -> GmemParams:
    """Merge ``gmem`` markers, farthest first (module, class, function): the nearest wins for
    each argument it gives."""
    if not markers:
        return GmemParams()  # the defaults (a test without the marker: most of a suite)
    values: dict[str, Any] = {}
    for args, kwargs in markers:
        if args:
            for i, arg in enumerate(args):
                _check_printable(arg, f"#{i + 1}", where)
            raise ConfigError(f"{where}: takes keyword arguments only, got positional {tuple(args)!r}")
        bound = bind("gmem", (), kwargs, where)
        values.update({k: v for k, v in bound.items() if k in kwargs})
    size = values.get("size", "4M")
    nbytes = size_bytes(size, "size", where)
    page_size = values.get("page_size", "2M")
    if page_size not in PAGE_SIZES:
        raise ConfigError(
            f"{where}: invalid page_size {page_size!r}; expected one of {', '.join(PAGE_SIZES)}"
            + suggest(str(page_size), PAGE_SIZES)
        )
    if nbytes > MAX_FILE_SIZE:
        raise ConfigError(f"{where}: invalid size {size!r}: larger than the largest file (2^63 - 1 bytes, loff_t)")
    if nbytes <= 0 or nbytes % 4096 or nbytes % size_bytes(page_size):
        raise ConfigError(
            f"{where}: invalid size {size!r} for page_size {page_size!r}; expected a positive multiple of 4K "
            "and of the page size"
        )
    vm_type = values.get("vm_type", "sw_protected")
    if vm_type not in VM_TYPES:
        raise ConfigError(
            f"{where}: invalid vm_type {vm_type!r}; expected one of {', '.join(VM_TYPES)}"
            + suggest(str(vm_type), VM_TYPES)
        )
    policy = values.get("tdx_fatal_policy")
    if policy is not None and (vm_type != "tdx" or policy not in TDX_FATAL_POLICIES):
        raise ConfigError(
            f"{where}: invalid tdx_fatal_policy {policy!r}; expected one of "
            f"{', '.join(TDX_FATAL_POLICIES)} with vm_type='tdx'" + suggest(str(policy), TDX_FATAL_POLICIES)
        )
    for flag in ("mmap", "init_private", "check"):
        if flag in values and not isinstance(values[flag], bool):
            raise ConfigError(f"{where}: {flag} must be True or False, got {values[flag]!r}")
    if values.get("init_private") is True and values.get("mmap", True) is False:
        raise ConfigError(
            f"{where}: init_private=True needs mmap=True, got mmap=False (the kernel takes "
            "GUEST_MEMFD_FLAG_INIT_PRIVATE only with GUEST_MEMFD_FLAG_SUPPORT_SHARED; a file without "
            "mmap is private already)"
        )
    revision = values.get("revision")
    if revision is not None:
        revision = check_revision(revision, where, known_revisions())
    hugetlb = values.get("hugetlb")
    if hugetlb is not None:
        if not isinstance(hugetlb, Mapping) or not all(
            k in ("2M", "1G") and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in hugetlb.items()
        ):
            raise ConfigError(f"{where}: invalid hugetlb {hugetlb!r}; expected e.g. {{'2M': 64, '1G': 4}}")
    return GmemParams(
        size=size,
        page_size=page_size,
        mmap=values.get("mmap", True),
        init_private=values.get("init_private", False),
        vm_type=vm_type,
        tdx_fatal_policy=policy,
        revision=revision,
        revision_source=where if revision is not None else "default",
        hugetlb=hugetlb,
        check=values.get("check", True),
    )


def describe_params(params: GmemParams) -> str:
    """The values the plugin builds a test's model objects from, for error messages."""
    parts = [f"size={params.size!r}", f"page_size={params.page_size!r}", f"hugetlb={params.pools()!r}"]
    if params.vm_type != "sw_protected":
        parts.append(f"vm_type={params.vm_type!r}")
    if params.revision is not None:
        parts.append(f"revision={params.revision!r}")
    return ", ".join(parts)


# --- armings from markers and options -----------------------------------------------------
@dataclass(frozen=True)
class ArmRequest:
    """One arming to make at the start of a test body: from a fault marker or --gmem-fault."""

    source: str
    point: str = ""
    kind: str = ""
    kind_args: tuple[tuple[str, Any], ...] = ()
    nth: int | None = 1
    times: int | None = 1
    when: Mapping[str, Any] | None = None
    spec: str | None = None  # text grammar form (fault marker, --gmem-fault)
    meta: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None  # the text form, when the maker already has it (a sweep's fault)

    def arm(self) -> list[faults.Arming]:
        """Arm in the current faults scope; raises ConfigError naming the source."""
        try:
            if self.spec is not None:
                return _arm_text(self.spec, self.source)
            kind = faults.make_kind(self.kind, **dict(self.kind_args))
            return [
                faults.inject(
                    self.point,
                    kind,
                    nth=self.nth,
                    times=self.times,
                    when=self.when or None,
                    source=self.source,
                )
            ]
        except ConfigError:
            raise
        except (faults.FaultError, ValueError, TypeError) as exc:
            msg = str(exc)
            if self.source not in msg:
                msg = f"{msg} (from {self.source})"
            raise ConfigError(msg) from None

    def text(self) -> str:
        """The arming in the text grammar (what ``--gmem-fault`` would take)."""
        if self.spec is not None:
            return self.spec
        if self.label is not None:
            return self.label
        try:
            from faults.spec import ArmingSpec, RuleSpec, TermSpec, format_spec, when_pairs

            kind = faults.make_kind(self.kind, **dict(self.kind_args))
            rule = RuleSpec(nth=self.nth, times=self.times)
            spec = ArmingSpec(self.point, (TermSpec(kind),), rule, when_pairs(self.when or {}))
            return format_spec(spec)
        except Exception:  # no grammar, or a value without a text form
            when = "".join(f",{k}={v!r}" for k, v in (self.when or {}).items())
            return f"{self.point}={self.kind}(nth={self.nth},times={self.times}{when})"


def _arm_text(text: str, source: str) -> list[faults.Arming]:
    arm = getattr(faults, "arm", None)
    if arm is None:
        try:
            from faults import grammar
        except ImportError:
            raise ConfigError(f"cannot arm {text!r} from {source}: this faults has no text grammar") from None
        arm = grammar.arm
    result = arm(text, source=source)
    return [a for a in result if isinstance(a, faults.Arming)]


def marker_requests(marker: str, args: Sequence[Any], kwargs: Mapping[str, Any], where: str) -> list[ArmRequest]:
    """The armings a fault marker asks for (arguments checked, names checked later by arming)."""
    build = MARKERS[marker].requests
    if build is None:
        raise ConfigError(f"{where}: not a fault marker")  # pragma: no cover - guarded by the caller
    return build(bind(marker, args, kwargs, where), where)


def allow_patterns(markers: Sequence[tuple[Sequence[Any], Mapping[str, Any]]], where: str) -> list[re.Pattern[str]]:
    out = []
    for args, kwargs in markers:
        pattern = bind("allow_warn", args, kwargs, where)["pattern"]
        if not isinstance(pattern, str):
            raise ConfigError(f"{where}: pattern must be a regular expression string, got {pattern!r}")
        try:
            out.append(re.compile(pattern))
        # re.compile also raises OverflowError ('a{4294967296}') and RecursionError (deep nesting)
        except (re.error, OverflowError, RecursionError) as exc:
            raise ConfigError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None
    return out


def validate(requests: Sequence[ArmRequest]) -> None:
    """Arm each request in a scratch scope and disarm at once: every name, kind and argument
    is checked exactly as the real arming will check it, without firing anything."""
    if not requests:
        return
    with faults.scope(inherit=False):
        for req in requests:
            for arming in req.arm():
                arming.disarm()
