"""pytest-gmem: a faithful model of KVM guest_memfd conversions, and a pytest plugin to test
them under injected faults. See README.md and docs/."""

from . import uapi
from .model import (
    DEFAULT_REVISION,
    REVISIONS,
    VM,
    ConversionError,
    GuestFault,
    GuestMemfd,
    Host,
    HostMapping,
    InvariantViolation,
    KernelBug,
    Pin,
    SigBus,
    Snapshot,
    Warn,
)

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_REVISION", "REVISIONS", "VM", "ConversionError", "GuestFault", "GuestMemfd", "Host",
    "HostMapping", "InvariantViolation", "KernelBug", "Pin", "SigBus", "Snapshot", "Warn", "uapi",
]
