"""pytest-gmem: a faithful model of KVM guest_memfd conversions, and a pytest plugin to test
them under injected faults. See README.md and docs/.

The model's names are exported lazily, so loading the pytest plugin does not import the model
until a test needs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from . import uapi

if TYPE_CHECKING:
    from .model import (
        DEFAULT_REVISION,
        REVISIONS,
        VM,
        ConversionError,
        GmemError,
        GuestFault,
        GuestMemfd,
        Host,
        HostMapping,
        InvariantViolation,
        KernelBug,
        Pin,
        SigBus,
        Snapshot,
        UnacceptedAccess,
        Warn,
    )

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_REVISION", "REVISIONS", "VM", "ConversionError", "GmemError", "GuestFault", "GuestMemfd", "Host",
    "HostMapping", "InvariantViolation", "KernelBug", "Pin", "SigBus", "Snapshot", "UnacceptedAccess",
    "Warn", "uapi",
]
_LAZY = frozenset(__all__) - {"uapi"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        # not cached here: the model module in sys.modules is the one whose classes it raises
        return getattr(import_module(".model", __name__), name)
    raise AttributeError(f"module 'pytest_gmem' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
