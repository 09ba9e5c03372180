"""The machine: huge page pools, memory, the kernel log's WARNs, deferred work, VMs.

``Host`` is the entry point of the model::

    host = Host(hugetlb={"2M": 64, "1G": 4}, revision="fixed")
    vm = host.create_vm(vm_type="sw_protected")
    gmem = vm.create_guest_memfd(size="8G", mmap=True, page_size="1G")
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import faults

from .errors import GuestFault, InvariantViolation, KernelBug, SigBus
from .folio import Block
from .hugetlb import HugePool
from .revisions import DEFAULT_REVISION, Revision, get_revision
from .units import PAGE_SIZE, PAGES_PER, parse_size

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd
    from .vm import VM


@dataclass(frozen=True)
class Warn:
    """One WARN splat in the kernel log."""

    where: str  # the kernel function that WARNed
    message: str
    fault: str | None  # label(s) of the fault(s) fired during the operation, if any
    operation: str  # the syscall-level operation that was running

    def __str__(self) -> str:
        via = f" [fault {self.fault}]" if self.fault else ""
        return f"WARNING: {self.where}: {self.message} (during {self.operation}){via}"


@dataclass(frozen=True)
class UserError:
    """What a public operation returned to userspace instead of success: an errno (``OSError``,
    ``ConversionError``), a signal (``SigBus``), a failed guest access (``GuestFault``), or a
    ``KernelBug`` (the model stopped where the kernel would hang or crash)."""

    operation: str  # the model method, e.g. "GuestMemfd.convert_shared"
    error: str  # the exception's class name
    errno: int | None
    message: str


#: What :func:`user_op` records; anything else (TypeError, ValueError) is a misuse of the
#: Python API, not something the kernel returns.
USER_ERRORS = (OSError, SigBus, GuestFault, KernelBug)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def user_op(fn: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """Decorates the model's public operations (the syscalls, faults and accesses a test makes):
    an error escaping the outermost one is appended to ``host.user_errors``. A test harness
    reads it to know whether an injected fault reached the caller as an error (pytest-gmem's
    fault sweeps: "clean" versus "success"). The object decorated has ``.host`` or
    ``.gmem.host``."""
    name = fn.__qualname__

    @functools.wraps(fn)
    def wrapper(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        host: Host = self.host if hasattr(self, "host") else self.gmem.host
        host._user_depth += 1
        try:
            return fn(self, *args, **kwargs)
        except USER_ERRORS as exc:
            if host._user_depth == 1:
                code = exc.errno if isinstance(exc, (OSError, GuestFault)) else None
                host.user_errors.append(UserError(name, type(exc).__name__, code, str(exc)))
            raise
        finally:
            host._user_depth -= 1

    return wrapper  # type: ignore[return-value]


class Host:
    """Huge page pools per size, memory, the WARN log, deferred work, and every VM and file."""

    def __init__(
        self,
        hugetlb: Mapping[str, int] | None = None,
        revision: str | Revision = DEFAULT_REVISION,
        memory: int | str | None = None,
        check_rollback: bool = False,
        wip_hugetlb: bool = False,
        gmem_in_place_conversion: bool = True,
    ) -> None:
        self.revision = revision if isinstance(revision, Revision) else get_revision(revision)
        #: upstream only: HugeTLB-backed guest_memfd from the authors' unmerged work branch
        #: (linux-next has none); the RFC v2 revisions have HugeTLB in the series itself
        self.wip_hugetlb = wip_hugetlb
        #: upstream only: kvm.gmem_in_place_conversion (off: KVM_SET_MEMORY_ATTRIBUTES2 on the
        #: guest_memfd fd is ENOTTY and INIT_SHARED is refused for a VM with private memory)
        self.gmem_in_place_conversion = gmem_in_place_conversion
        for name, val in (("wip_hugetlb", wip_hugetlb), ("gmem_in_place_conversion", gmem_in_place_conversion)):
            if not isinstance(val, bool):
                raise TypeError(f"Host({name}=...) must be True or False, got {val!r}")
        self.pools: dict[str, HugePool] = {}
        for name, count in (hugetlb or {}).items():
            if name not in ("2M", "1G"):
                raise ValueError(f"hugetlb pool size {name!r} is not one of '2M', '1G'")
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"hugetlb pool {name!r} count must be an integer >= 0, got {count!r}")
            self.pools[name] = HugePool(name, PAGES_PER[name], count, count)
        self._baseline = {n: p.stats() for n, p in self.pools.items()}
        self.memory_pages: int | None = None if memory is None else parse_size(memory, "memory") // PAGE_SIZE
        self.mem_used = 0  # 4K pages of host memory in use (4K folios, restored vmemmap)
        self.warnings: list[Warn] = []
        #: errors the public operations returned to the caller, in order (see :func:`user_op`)
        self.user_errors: list[UserError] = []
        self._user_depth = 0
        self._warned_once: set[str] = set()
        self._work: deque[tuple[str, Callable[[], None]]] = deque()
        self.vms: list[VM] = []
        self.files: list[GuestMemfd] = []  # live inodes
        self._block_ids = 0
        self.live_blocks: set[Block] = set()  # huge pages taken from the pools
        self._op: str = "idle"
        self._op_faults: list[str] = []
        #: compare each file's snapshot before and after a conversion that fails with ENOMEM or
        #: EAGAIN (the design's promise: rolled back, nothing changed); a difference is a
        #: "[7 rollback]" violation. O(ranges) per conversion: on for fault sweeps, off otherwise
        self.check_rollback = check_rollback
        self.rollback_failures: list[str] = []
        #: an operation that returned success without doing what it promises (a punch hole whose
        #: range does not read zeros): "[8 punch]" violations, recorded by the operation itself
        self.contract_failures: list[str] = []

    # --- VMs ----------------------------------------------------------------------------------
    def create_vm(self, vm_type: str | int = "sw_protected", **options: Any) -> VM:
        """``KVM_CREATE_VM``: ``vm_type`` "sw_protected" or "tdx" (``tdx_fatal_policy``)."""
        from .vm import make_vm

        vm = make_vm(self, vm_type, **options)
        self.vms.append(vm)
        return vm

    # --- memory -------------------------------------------------------------------------------
    def pages_available(self, want: int) -> int:
        if self.memory_pages is None:
            return want
        return max(0, min(want, self.memory_pages - self.mem_used))

    def charge_pages(self, n: int) -> None:
        self.mem_used += n

    def uncharge_pages(self, n: int) -> None:
        self.mem_used -= n

    def pool(self, page_size: str) -> HugePool:
        """The hstate of ``page_size`` ("2M" or "1G"): x86 has both, so a size the host was
        built without is an empty pool (its starting counters recorded for the checks)."""
        if page_size not in self.pools:
            self.pools[page_size] = HugePool(page_size, PAGES_PER[page_size], 0, 0)
            self._baseline[page_size] = self.pools[page_size].stats()
        return self.pools[page_size]

    def hugetlb_stats(self, page_size: str = "2M") -> dict[str, int]:
        """``/sys/kernel/mm/hugepages/hugepages-*/{nr,free,resv}_hugepages``."""
        if page_size not in ("2M", "1G"):
            raise ValueError(f"hugetlb_stats: page size {page_size!r} is not one of '2M', '1G'")
        if page_size not in self.pools:
            return {"total": 0, "free": 0, "resv": 0}
        return self.pools[page_size].stats()

    # --- kernel log and deferred work ---------------------------------------------------------
    def begin_op(self, what: str) -> None:
        self._op = what
        self._op_faults = []

    def next_block_id(self) -> int:
        """The id of the next block this host allocates (``Block#N`` in messages): counted per
        host, so a test's messages read the same whatever ran before it in the process."""
        self._block_ids += 1
        return self._block_ids

    def note_fault(self, fired: faults.Fired) -> None:
        """The model acted on an injected fault (for WARN records and reports)."""
        self._op_faults.append(fired.label())

    def warn(self, where: str, message: str, once: bool = False) -> None:
        """``WARN_ON`` / ``WARN_ONCE``: a record in ``host.warnings``."""
        if once:
            if where in self._warned_once:
                return
            self._warned_once.add(where)
        fault = ", ".join(self._op_faults) or None
        self.warnings.append(Warn(where, message, fault, self._op))

    def queue_work(self, what: str, fn: Callable[[], None]) -> None:
        self._work.append((what, fn))

    def pending_work(self) -> list[str]:
        return [w for w, _ in self._work]

    def flush_work(self) -> int:
        """Run the kernel's deferred work (merging freed pieces of split huge pages and returning
        them to the pool); returns how many items ran."""
        n = 0
        while self._work:
            _, fn = self._work.popleft()
            fn()
            n += 1
        return n

    # --- checking -----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`InvariantViolation` naming each broken invariant."""
        from .invariants import check_host

        problems = check_host(self)
        if problems:
            raise InvariantViolation(problems, self.state_map())

    def violations(self) -> list[str]:
        from .invariants import check_host

        return check_host(self)

    def state_map(self) -> str:
        """A compact text picture of every file: ranges, folios, mappings, pins."""
        from .statemap import render_host

        return render_host(self)

    def describe_file(self, g: GuestMemfd) -> str:
        """The name the checker and the state map give ``g`` (``gmem#N``)."""
        return f"gmem#{self.files.index(g)}" if g in self.files else "gmem(closed)"

    def baseline_stats(self) -> dict[str, dict[str, int]]:
        return dict(self._baseline)

    def close(self) -> None:
        """Close every file and mapping (end of a test)."""
        for f in list(self.files):
            f.close_everything()

    def __repr__(self) -> str:
        pools = ", ".join(f"{n}: {p.free}/{p.total} free, {p.resv} resv" for n, p in self.pools.items())
        return f"Host(revision={self.revision.name!r}, {pools or 'no hugetlb'}, files={len(self.files)})"
