"""Fault kinds: what a fired point makes the code under test see.

Each kind has a short string name (``Kind.name``) used in allow-lists, the text grammar and
reports. Kinds are frozen values so they can be shared, compared and printed.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import UnknownKind, suggest

#: TDX module status codes the model knows (values from arch/x86/kvm/vmx/tdx_errno.h).
TDX_CODES: dict[str, int] = {
    "TDX_OPERAND_BUSY": 0x8000020000000000,
    "TDX_EPT_WALK_FAILED": 0xC0000B0000000000,
    "TDX_EPT_ENTRY_STATE_INCORRECT": 0xC0000B0D00000000,
    "TDX_SW_ERROR": 0x4000000000000000 | 0xFFFF0000,
}
#: TDX codes KVM retries; every other code is fatal (a KVM or TDX-module bug).
TDX_RETRYABLE = frozenset({"TDX_OPERAND_BUSY"})
#: The alias ``fatal`` stands for a generic fatal SEAMCALL error.
TDX_FATAL_ALIAS = "TDX_SW_ERROR"


class Kind:
    """Base of all kinds. ``name`` is the short name; ``label()`` a one-word description;
    ``id_label()`` the compact form in a pytest item id (fault sweeps, coverage contexts)."""

    name: ClassVar[str] = "kind"

    def label(self) -> str:
        return self.name

    def id_label(self) -> str:
        """No '-', '[' or spaces: ``label()`` with its punctuation turned into dots."""
        return self.label().replace("(", ".").replace(")", "").replace(",", ".").replace("=", "")

    def __str__(self) -> str:
        return self.label()


@dataclass(frozen=True)
class Errno(Kind):
    """The point fails with an errno (``ENOMEM``, ``EAGAIN``, ...); ``.name`` is the errno name."""

    code: str = "ENOMEM"

    def __post_init__(self) -> None:
        if self.code not in ERRNO_NAMES:
            raise UnknownKind(f"unknown errno kind {self.code!r}" + suggest(self.code, ERRNO_NAMES))
        object.__setattr__(self, "code", ERRNO_ALIASES.get(self.code, self.code))

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.code

    @property
    def errno(self) -> int:
        return int(getattr(_errno, self.code))

    def id_label(self) -> str:
        return self.code  # ENOMEM


@dataclass(frozen=True)
class SpeculativeRefcount(Kind):
    """Transient extra references seen at the point, dropped after ``hold`` spins (None: never,
    until the arming ends)."""

    refs: int = 1
    hold: int | None = None
    name: ClassVar[str] = "speculative_refcount"

    def __post_init__(self) -> None:
        if self.refs < 1:
            raise ValueError(f"speculative_refcount refs must be >= 1, got {self.refs}")
        if self.hold is not None and self.hold < 0:
            raise ValueError(f"speculative_refcount hold must be >= 0 or None, got {self.hold}")

    def label(self) -> str:
        return f"speculative_refcount(refs={self.refs},hold={self.hold})"

    def id_label(self) -> str:
        refs = "" if self.refs == 1 else f".x{self.refs}"
        return f"specref{refs}{'.forever' if self.hold is None else f'.hold{self.hold}'}"  # specref.x2.hold3


@dataclass(frozen=True)
class ExtraRefcount(Kind):
    """A lasting unexpected reference (a stray pin) on the folio, held until the arming ends."""

    refs: int = 1
    name: ClassVar[str] = "extra_refcount"

    def __post_init__(self) -> None:
        if self.refs < 1:
            raise ValueError(f"extra_refcount refs must be >= 1, got {self.refs}")

    def label(self) -> str:
        return f"extra_refcount(refs={self.refs})"

    def id_label(self) -> str:
        return "extraref" if self.refs == 1 else f"extraref.x{self.refs}"


@dataclass(frozen=True)
class TdxError(Kind):
    """A SEAMCALL returns a TDX error status (``TDX_OPERAND_BUSY`` is retryable, others fatal)."""

    code: str = "TDX_OPERAND_BUSY"
    name: ClassVar[str] = "tdx_error"

    def __post_init__(self) -> None:
        if self.code == "fatal":
            object.__setattr__(self, "code", TDX_FATAL_ALIAS)
        if self.code not in TDX_CODES:
            raise UnknownKind(
                f"unknown TDX error code {self.code!r}" + suggest(self.code, [*TDX_CODES, "fatal"])
            )

    @property
    def status(self) -> int:
        return TDX_CODES[self.code]

    @property
    def retryable(self) -> bool:
        return self.code in TDX_RETRYABLE

    def label(self) -> str:
        return f"tdx_error({self.code})"

    def id_label(self) -> str:
        code = self.code.lower().removeprefix("tdx_")
        return "tdx.busy" if code == "operand_busy" else f"tdx.{code}"  # tdx.sw_error


@dataclass(frozen=True)
class Callback(Kind):
    """Anything else: ``fn(context)`` runs when the point fires; it may raise, or return another
    kind for the point to apply (or None for no effect)."""

    fn: Callable[[Mapping[str, Any]], Kind | None] = field(compare=False)
    name: ClassVar[str] = "callback"

    def label(self) -> str:
        return f"callback({getattr(self.fn, '__name__', 'fn')})"


@dataclass(frozen=True)
class Off(Kind):
    """No fault: consumes a count in a grammar chain (``2*off->1*enomem``)."""

    name: ClassVar[str] = "off"


#: Kinds every point accepts, whatever its allow-list.
UNIVERSAL_KINDS = frozenset({"callback", "off"})
ERRNO_NAMES = sorted(n for n in dir(_errno) if n.startswith("E") and n.isupper())
#: Errno names that stand for another (the kind takes the canonical name: EWOULDBLOCK is EAGAIN).
ERRNO_ALIASES = {"EWOULDBLOCK": "EAGAIN"}
PARAM_KINDS: dict[str, type[Kind]] = {
    "speculative_refcount": SpeculativeRefcount,
    "extra_refcount": ExtraRefcount,
    "tdx_error": TdxError,
    "off": Off,
}


def enomem() -> Errno:
    """ENOMEM: an allocation fails."""
    return Errno("ENOMEM")


def errno_kind(code: str) -> Errno:
    """Any errno by name, e.g. ``errno_kind("EIO")``."""
    return Errno(code.upper())


def speculative_refcount(refs: int = 1, hold: int | None = None) -> SpeculativeRefcount:
    """Transient extra references, dropped after ``hold`` spins (None: held until disarm)."""
    return SpeculativeRefcount(refs, hold)


def extra_refcount(refs: int = 1) -> ExtraRefcount:
    """A lasting unexpected reference held until the arming ends."""
    return ExtraRefcount(refs)


def tdx_error(code: str = "TDX_OPERAND_BUSY") -> TdxError:
    """A TDX SEAMCALL error: ``TDX_OPERAND_BUSY`` (retryable) or ``fatal`` / another code."""
    return TdxError(code)


def callback(fn: Callable[[Mapping[str, Any]], Kind | None]) -> Callback:
    """Run ``fn(context)`` when the point fires."""
    return Callback(fn)


def kind_arguments(kind: Kind) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``(name, keyword arguments)`` that rebuild ``kind`` with :func:`make_kind` (every field
    given): errno codes and the parametrized kinds; a callback or ``off`` has none (UnknownKind)."""
    if isinstance(kind, Errno):
        return kind.code, ()
    if isinstance(kind, Off) or PARAM_KINDS.get(kind.name) is not type(kind):
        raise UnknownKind(f"fault kind {kind.label()} cannot be rebuilt by name")
    return kind.name, tuple((f.name, getattr(kind, f.name)) for f in dataclasses.fields(kind) if f.init)  # type: ignore[arg-type]


def kind_names() -> list[str]:
    """Every short kind name the engine knows (errnos listed as ``E...``)."""
    return [*sorted(PARAM_KINDS), "callback", "ENOMEM", "EAGAIN", "EIO", "EFAULT", "EINVAL"]


def make_kind(name: str, *args: Any, **kwargs: Any) -> Kind:
    """Build a kind from its short name (case-insensitive for errnos) and arguments."""
    return _from_name(name, args, kwargs, None)


def _from_name(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], source: str | None) -> Kind:
    low = name.lower()
    if low in PARAM_KINDS:
        return PARAM_KINDS[low](*args, **kwargs)
    if low == "callback":
        return Callback(*args, **kwargs)
    if name.upper() in ERRNO_NAMES:
        if args or kwargs:
            raise UnknownKind(f"errno kind {name.upper()} takes no arguments{_where(source)}")
        return Errno(name.upper())
    raise UnknownKind(f"unknown fault kind {name!r}{_where(source)}" + suggest(name, [*PARAM_KINDS, *ERRNO_NAMES]))


def _where(source: str | None) -> str:
    return f" (from {source})" if source else ""


def as_kind(kind: Kind | str, source: str | None = None) -> Kind:
    """Accept a kind object or its short name; ``source`` says where a bad name came from."""
    if isinstance(kind, Kind):
        return kind
    if isinstance(kind, str):
        return _from_name(kind, (), {}, source)
    raise UnknownKind(f"a fault kind must be a faults kind object or a name, got {kind!r}{_where(source)}")


def canonical_kind_name(name: str) -> str | None:
    """The allow-list spelling of a kind name (``enomem`` -> ``ENOMEM``, ``EWOULDBLOCK`` ->
    ``EAGAIN``, ``Tdx_Error`` -> ``tdx_error``), or None for a name the engine does not know."""
    low = name.lower()
    if low in PARAM_KINDS or low in UNIVERSAL_KINDS:
        return low
    up = name.upper()
    if up in ERRNO_NAMES:
        return ERRNO_ALIASES.get(up, up)
    return None


def allow_list_names() -> list[str]:
    """Every name an allow-list may hold (for suggestions)."""
    return [*sorted(PARAM_KINDS), *sorted(UNIVERSAL_KINDS - set(PARAM_KINDS)), *ERRNO_NAMES]
