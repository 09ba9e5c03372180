"""The guest_memfd model: pytest-free, one module per kernel file (or function group) mirrored.

Importing this package declares every fault point of the model (it is the ``faults.providers``
entry point of pytest-gmem).
"""

from . import conversion, guestmem_hugetlb, hugetlb, restructure, tdx, truncate  # noqa: F401  (declare points)
from .errors import ConversionError, GmemError, GuestFault, InvariantViolation, KernelBug, SigBus
from .guest_memfd import GuestMemfd
from .host import Host, Warn
from .mmap import HostMapping, Pin
from .revisions import DEFAULT_REVISION, REVISIONS, Revision
from .snapshot import Snapshot
from .tdx import UnacceptedAccess
from .vm import VM

__all__ = [
    "DEFAULT_REVISION", "REVISIONS", "ConversionError", "GmemError", "GuestFault", "GuestMemfd", "Host",
    "HostMapping", "InvariantViolation", "KernelBug", "Pin", "Revision", "SigBus", "Snapshot",
    "UnacceptedAccess", "VM", "Warn",
]
