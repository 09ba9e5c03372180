"""``GmemMachine``: a Hypothesis ``RuleBasedStateMachine`` over the guest_memfd model.

Rules build hosts (a revision each), files (4K, 2M, 1G pages; sw_protected or TDX VMs), convert
ranges both ways through the three entries (the convenient call, the raw ``ioctl``, and
``set_attributes``), read and write as the guest and through host mappings, pin and unpin,
punch holes, fallocate, close, unmap and flush the deferred work, and arm one fault for the next
operation. After every step the invariant checks the host (``host.check()``), the WARN log and
the user-visible oracles; :mod:`.defects` says what is a defect and what is legitimate.

Rules whose arguments depend on the file's size come once per page size (``convert_2M``,
``guest_1G``, ...), so every offset prints as the byte offset it is.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hypothesis import currently_in_test_context, note
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    multiple,
    precondition,
    rule,
)

import faults

from .. import uapi
from ..model import ConversionError, GuestFault, GuestMemfd, Host, KernelBug, Pin, SigBus
from ..revisions import REVISIONS, get_revision
from . import defects as dmod
from .defects import Finding, Outcome
from .strategies import GEOMETRIES, INVALID_SPANS, Geometry, Hex, accesses, fault_specs, offsets, spans

#: what an operation may return to userspace without that being a failure (KernelBug is
#: caught too, and classified)
EXPECTED = (OSError, SigBus, GuestFault)


class GmemFailure(AssertionError):
    """The state machine found a problem: ``.findings`` (each with the defect it is a symptom
    of, or None), the revision, and the gmem seed the run used."""

    def __init__(self, findings: list[Finding], outcome: Outcome, spec: str | None, seed: int) -> None:
        self.findings = findings
        self.defects = sorted({f.defect or "unexplained" for f in findings})
        self.seed = seed
        fault = f" under fault {spec!r}" if spec else ""
        lines = "\n".join(f"  - {f}" for f in findings)
        super().__init__(f"{len(findings)} problem(s) under revision {outcome.revision.name!r} after "
                         f"{outcome.operation}{fault}:\n{lines}\n(gmem seed {seed}: GMEM_SEED={seed})")


@dataclass
class MachineStats:
    """Counts over every run of a machine class (set ``GmemMachine.stats`` to collect them)."""

    runs: int = 0
    steps: int = 0
    operations: int = 0
    faults_armed: int = 0
    faults_fired: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # expected errors by errno / class
    tolerated: Counter[str] = field(default_factory=Counter)  # legitimate WARNs by defect
    ignored: Counter[str] = field(default_factory=Counter)  # non-target findings (target mode)
    findings: Counter[str] = field(default_factory=Counter)  # failures raised, by defect
    retired_hosts: int = 0


def _env_seed() -> int:
    raw = os.environ.get("GMEM_SEED", "").strip()
    try:
        return int(raw, 0) if raw else 0
    except ValueError:
        raise ValueError(f"invalid GMEM_SEED {raw!r}: expected a non-negative integer") from None


class GmemMachine(RuleBasedStateMachine):
    """The guest_memfd model under random programs and single (or depth-2) faults.

    Configure by subclassing (class attributes), or with :meth:`configure`:

    * ``revisions``: the revisions a host may follow (default ``fixed``, ``prealloc``,
      ``upstream``); ``page_sizes`` and ``vm_types`` likewise.
    * ``target``: a defect name (:data:`~pytest_gmem.hypothesis.defects.TARGETS`): only that
      defect fails the run, other findings retire their host and the run goes on.
    * ``tolerate``: defects that do not fail when their trigger happened (None: what each
      revision is documented to keep, ``rollback-warn`` under ``fixed``).
    * ``seed``: the gmem seed of the fault scopes (None: ``GMEM_SEED``, else 0).
    * ``check_rollback``: ``Host(check_rollback=True)`` (invariant 7), on by default.
    """

    revisions: ClassVar[tuple[str, ...]] = ("fixed", "prealloc", "upstream")
    page_sizes: ClassVar[tuple[str, ...]] = ("4K", "2M", "1G")
    vm_types: ClassVar[tuple[str, ...]] = ("sw_protected", "tdx")
    target: ClassVar[str | None] = None
    tolerate: ClassVar[frozenset[str] | None] = None
    seed: ClassVar[int | None] = None
    check_rollback: ClassVar[bool] = True
    #: the hosts a run keeps alive at once (retired ones do not count)
    max_hosts: ClassVar[int] = 2
    #: open files of each page size at once (on live hosts); each host's pools hold that many
    max_files: ClassVar[int] = 2
    stats: ClassVar[MachineStats | None] = None

    hosts = Bundle("hosts")
    gmems = Bundle("gmems")
    pins = Bundle("pins")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _install_rules(cls)

    @classmethod
    def configure(cls, name: str | None = None, **attrs: Any) -> type[GmemMachine]:
        """A subclass with these class attributes: ``GmemMachine.configure(revisions=("fixed",))``,
        ``GmemMachine.configure(revisions=("rfc-v2",), target="partial-punch")``."""
        label = name or cls.__name__ + "".join(
            "_" + "_".join(str(v).replace("-", "_") for v in (val if isinstance(val, tuple) else (val,)))
            for key, val in sorted(attrs.items()) if key in ("revisions", "target"))
        return type(label, (cls,), {"__module__": cls.__module__, **attrs})

    def __init__(self) -> None:
        super().__init__()
        cls = type(self)
        for r in cls.revisions:
            get_revision(r, f"{cls.__name__}.revisions")
        if cls.target is not None and cls.target not in dmod.TARGETS:
            raise ValueError(f"{cls.__name__}.target {cls.target!r} is not one of {', '.join(dmod.TARGETS)}")
        self.gmem_seed = cls.seed if cls.seed is not None else _env_seed()
        self._pending: str | None = None
        self._outcome: Outcome | None = None
        self._spec: str | None = None
        self._host_of_outcome: Host | None = None
        self._hosts: list[Host] = []
        self._retired: set[int] = set()
        if cls.stats is not None:
            cls.stats.runs += 1

    # --- helpers ---------------------------------------------------------------------------
    def _live(self, host: Host) -> bool:
        return id(host) not in self._retired

    def _open_files(self, page_size: str | None = None) -> int:
        """Files with an open fd on live hosts (of ``page_size``)."""
        return sum(1 for h in self._hosts if self._live(h) for g in h.files
                   if g.fd_open and (page_size is None or g.page_size == page_size))

    def _alive_files(self, page_size: str) -> int:
        """Files not yet evicted (a mapping or pin keeps a closed one) on live hosts."""
        return sum(1 for h in self._hosts if self._live(h) for g in h.files if g.page_size == page_size)

    def _retire(self, host: Host) -> None:
        if self._live(host):
            self._retired.add(id(host))
            if type(self).stats is not None:
                type(self).stats.retired_hosts += 1  # type: ignore[union-attr]

    def _new_host(self, revision: str, spare: int) -> Host:
        geo = GEOMETRIES
        per = type(self).max_files  # files of each page size the pools hold, plus the spare pages
        pools = {"2M": per * geo["2M"].units + spare, "1G": per * geo["1G"].units + min(spare, 1)}
        host = Host(hugetlb=pools, revision=revision, check_rollback=type(self).check_rollback,
                    wip_hugetlb=REVISIONS[revision].hugetlb == "wip")
        self._hosts.append(host)
        return host

    def _op(self, host: Host, operation: str, fn: Callable[[], Any]) -> Outcome:
        """Run one operation under the pending fault (armed in a scope of its own, gone when the
        operation returns); record what it did for the invariant."""
        spec, self._pending = self._pending, None
        stats = type(self).stats
        warned = len(host.warnings)
        outcome = Outcome(operation, host.revision)
        with faults.scope(inherit=False, seed=self.gmem_seed, name=f"GmemMachine {operation}") as sc:
            if spec is not None:
                faults.arm(spec, source="GmemMachine.arm_fault")
            try:
                outcome.result = fn()
            except (*EXPECTED, KernelBug) as exc:
                outcome.error = exc
            fired = list(sc.fired)
        outcome.warnings = host.warnings[warned:]
        outcome.fired = [dmod.fired_fault(f.point, f.kind, f.context) for f in fired]
        if stats is not None:
            stats.operations += 1
            stats.faults_armed += spec is not None
            stats.faults_fired += len(fired)
            if outcome.error is not None:
                code = getattr(outcome.error, "errno", None)
                stats.errors[_errno.errorcode.get(code, type(outcome.error).__name__) if code else
                             type(outcome.error).__name__] += 1
        self._outcome, self._spec, self._host_of_outcome = outcome, spec, host
        return outcome

    # --- the check after every step ---------------------------------------------------------
    def check_step(self) -> None:
        """After every step (each rule ends with it, so the printed program stays a list of
        rule calls): the host's invariants (``host.check()``), its new WARNs and the oracles of
        the step's operation, classified (defects.py); fails on anything neither tolerated nor
        ignored."""
        cls = type(self)
        if cls.stats is not None:
            cls.stats.steps += 1
        outcome, host, spec = self._outcome, self._host_of_outcome, self._spec
        self._outcome = self._host_of_outcome = None
        if outcome is None or host is None or not self._live(host):
            return
        outcome.violations = host.violations()
        findings = dmod.classify(outcome)
        if not findings:
            return
        tolerate = cls.tolerate if cls.tolerate is not None else dmod.default_tolerate(host.revision)
        failing: list[Finding] = []
        for f in findings:
            if cls.target is not None and f.defect != cls.target:
                if cls.stats is not None:
                    cls.stats.ignored[f.defect or "unexplained"] += 1
            elif cls.target is None and dmod.tolerated(f, outcome, tolerate):
                if cls.stats is not None:
                    cls.stats.tolerated[f.defect or "unexplained"] += 1
            else:
                failing.append(f)
        if not failing:
            if dmod.breaks_state(outcome, findings):
                self._retire(host)  # its invariants are no longer promised: go on with new hosts
            return
        if failing:
            if cls.stats is not None:
                for f in failing:
                    cls.stats.findings[f.defect or "unexplained"] += 1
            raise GmemFailure(failing if cls.target is not None else findings, outcome, spec, self.gmem_seed)

    def teardown(self) -> None:
        for host in self._hosts:
            try:
                host.close()
            except (*EXPECTED, KernelBug):
                pass  # a host the run broke (retired) may not close cleanly

    # --- rule bodies (the rules are made by _install_rules) ----------------------------------
    def _arm_fault(self, spec: str) -> None:
        """Arm ``spec`` (``--gmem-fault`` text) for the next operation only."""
        faults.parse(spec)  # a bad spec is a bug of the machine, not of the model
        self._pending = spec

    def _close(self, gmem: GuestMemfd) -> None:
        """``close(fd)``; the file is released once no mapping holds it."""
        if self._live(gmem.host):
            self._op(gmem.host, "close", gmem.close)

    def _munmap(self, gmem: GuestMemfd) -> None:
        """``munmap`` of the file's newest mapping (may release a closed file)."""
        if self._live(gmem.host) and gmem.mappings:
            self._op(gmem.host, "munmap", gmem.mappings[-1].munmap)

    def _convert_invalid(self, gmem: GuestMemfd, case: str, to: str, entry: str) -> None:
        """A conversion of a range the kernel refuses (``case``: a key of ``INVALID_SPANS``):
        EINVAL, and nothing changed."""
        off, size = INVALID_SPANS[case](gmem.size)
        self._convert(GEOMETRIES[gmem.page_size], gmem, (Hex(off), Hex(size)), to, entry)

    def _unpin(self, pin: Pin) -> None:
        if self._live(pin.gmem.host):
            self._op(pin.gmem.host, "unpin", pin.unpin)

    def _flush_work(self, host: Host) -> None:
        """The deferred merge of freed pieces (``host.flush_work()``)."""
        if self._live(host):
            self._op(host, "flush_work", host.flush_work)

    # --- per-geometry bodies (bound by _install_rules) --------------------------------------
    def _boot(self, revision: str, spare: int) -> Host:
        if currently_in_test_context():  # not when the printed program is pasted and re-run
            note(f"# gmem seed: {self.gmem_seed} (GMEM_SEED={self.gmem_seed} reproduces it)")
        return self._new_host(revision, spare)

    def _create(self, geo: Geometry, host: Host, vm: str, mmap: bool, init_private: bool, populate: bool) -> Any:
        if not self._live(host):
            return multiple()
        vm_type, _, policy = vm.partition(":")
        options = {"tdx_fatal_policy": policy or "bug-vm"} if vm_type == "tdx" else {}

        made: list[GuestMemfd] = []

        def create() -> None:
            v = host.create_vm(vm_type=vm_type, **options)
            g = v.create_guest_memfd(geo.size, mmap=mmap, init_private=init_private, page_size=geo.page_size)
            made.append(g)
            if populate:  # every huge page allocated, so conversions split and merge at once
                g.fallocate(uapi.FALLOC_FL_KEEP_SIZE, 0, g.size)

        self._op(host, "create", create)
        return multiple(*made)  # none when the creation failed; the file when only its fallocate did

    def _convert(self, geo: Geometry, g: GuestMemfd, span: tuple[int, int], to: str, entry: str) -> None:
        host = g.host
        if not self._live(host):
            return
        off, size = int(span[0]), int(span[1])
        to_shared = to == "shared"
        start, end = off >> 12, (off + size) >> 12
        n = g.nr_pages_in_folio
        valid = off % 4096 == 0 and size % 4096 == 0 and 0 < size and off + size <= g.size
        ws, we = (start - start % n, min(g.nr_pages, -(-end // n) * n)) if valid else (0, g.nr_pages)
        before_share = [g.share.ranges(ws, start), g.share.ranges(start, end), g.share.ranges(end, we)] \
            if valid else None
        before_digest = g.contents.digest(ws, we)
        before_snap = g.snapshot() if not valid else None
        abi = host.revision.abi
        buf: ctypes.Structure | None = None

        def run() -> None:
            nonlocal buf
            if entry == "call":
                (g.convert_shared if to_shared else g.convert_private)(off, size)
            elif entry == "set_attributes":
                g.set_attributes(off, size, 0 if to_shared else uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
            elif abi == "upstream":
                buf = uapi.kvm_memory_attributes2(offset=off, size=size,
                                                  attributes=0 if to_shared else uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
                g.ioctl(uapi.KVM_SET_MEMORY_ATTRIBUTES2, buf)
            else:
                buf = uapi.rfc_v2.kvm_gmem_convert(offset=off, size=size)
                g.ioctl(uapi.KVM_GMEM_CONVERT_SHARED if to_shared else uapi.KVM_GMEM_CONVERT_PRIVATE, buf)

        out = self._op(host, "convert", run)
        err = out.error
        oracles = out.oracles
        what = f"{'to shared' if to_shared else 'to private'} [{off:#x}, +{size:#x}) via {entry}"
        if not g.fd_open or isinstance(err, KernelBug):
            return  # EBADF comes first; a KernelBug is the finding
        if entry == "set_attributes" and abi != "upstream":
            if not (isinstance(err, OSError) and err.errno == _errno.ENOTTY):
                oracles.append(("errno", f"{what}: set_attributes under the rfc-v2 uAPI returned {err!r}, "
                                         "not ENOTTY"))
            return
        if not valid:
            if not (isinstance(err, OSError) and err.errno == _errno.EINVAL):
                oracles.append(("errno", f"{what}: an invalid range returned {err!r}, not EINVAL"))
            elif g.snapshot() != before_snap:
                oracles.append(("einval-changed", f"{what}: EINVAL but the file changed"))
            return
        assert before_share is not None
        exact_contents = g.vm.preserves_contents or (err is not None and (not to_shared or host.revision.prealloc))
        if exact_contents and g.contents.digest(ws, we) != before_digest:
            oracles.append(("contents", f"{what} ({'failed: ' + str(err) if err else 'succeeded'}) changed the "
                                        f"contents of [{ws << 12:#x}, {we << 12:#x})"))
        if not g.supports_shared:
            return
        left, mid, right = g.share.ranges(ws, start), g.share.ranges(start, end), g.share.ranges(end, we)
        if err is None:
            target = "shared" if to_shared else "private"
            if (left, right) != (before_share[0], before_share[2]) or any(v != target for _, _, v in mid):
                oracles.append(("unconverted", f"{what} reported success but the window reads {left + mid + right}"))
            return
        if not isinstance(err, ConversionError):
            return
        if [left, mid, right] != before_share:
            was = [r for part in before_share for r in part]
            oracles.append(("shareability", f"{what} failed ({err}) but changed the window's shareability "
                                             f"from {was} to {left + mid + right}"))
        if err.errno in (_errno.ENOMEM, _errno.EAGAIN):
            eo = err.error_offset
            if not ws << 12 <= eo < we << 12:
                oracles.append(("error-offset", f"{what} failed with {_errno.errorcode[err.errno]} and "
                                                f"error_offset {eo:#x}, outside [{ws << 12:#x}, {we << 12:#x})"))
            if buf is not None and getattr(buf, "error_offset", eo) != eo & (2**64 - 1):
                oracles.append(("error-offset", f"{what}: the ioctl wrote error_offset "
                                                f"{buf.error_offset:#x} back, the error says {eo:#x}"))

    def _guest(self, geo: Geometry, g: GuestMemfd, at: int, op: str, byte: int) -> None:
        if not self._live(g.host):
            return
        off = int(at)
        if op == "write":
            self._op(g.host, "guest", lambda: g.guest_fill(off, 16, byte))
        elif op == "read":
            self._op(g.host, "guest", lambda: g.guest_read(off, 16))
        else:
            self._op(g.host, "guest", lambda: g.guest_accept(off - off % 4096, 4096))

    def _host_access(self, geo: Geometry, g: GuestMemfd, access: tuple[int, int], op: str, byte: int) -> None:
        if not self._live(g.host):
            return
        off, length = int(access[0]), int(access[1])

        def run() -> object:
            m = g.mappings[0] if g.mappings else g.mmap()
            return m.fill(off, length, byte) if op == "write" else m.read(off, length)

        self._op(g.host, "host", run)

    def _fallocate(self, geo: Geometry, g: GuestMemfd, span: tuple[int, int], mode: str) -> None:
        if not self._live(g.host):
            return
        off, size = int(span[0]), int(span[1])
        if mode == "punch":
            self._op(g.host, "punch", lambda: g.punch_hole(off, size))
        else:
            self._op(g.host, "fallocate", lambda: g.fallocate(uapi.FALLOC_FL_KEEP_SIZE, off, size))

    def _pin(self, geo: Geometry, g: GuestMemfd, span: tuple[int, int]) -> Any:
        if not self._live(g.host):
            return multiple()
        off, size = int(span[0]), min(int(span[1]), 4 * 4096)

        def run() -> Pin:
            m = g.mappings[0] if g.mappings else g.mmap()
            return m.pin(off, size)

        out = self._op(g.host, "pin", run)
        pin = out.result
        return multiple() if out.error is not None or pin is None else multiple(pin)


def _install_rules(cls: type[GmemMachine]) -> None:
    """Give ``cls`` its host and per-page-size rules, drawn from its class attributes (so a
    subclass with ``revisions = ("rfc-v2",)`` draws only that revision)."""
    revisions = st.sampled_from(tuple(cls.revisions))
    spare = st.sampled_from((2, 0))

    def boot(self: GmemMachine, revision: str, spare: int) -> Host:
        return self._boot(revision, spare)

    def new_host(self: GmemMachine, revision: str, spare: int) -> Host:
        return self._new_host(revision, spare)

    _put(cls, "boot", initialize(target=cls.hosts, revision=revisions, spare=spare), boot)
    live = precondition(lambda self: sum(self._live(h) for h in self._hosts) < type(self).max_hosts)
    _put(cls, "new_host", lambda fn: rule(target=cls.hosts, revision=revisions, spare=spare)(live(fn)), new_host)
    idle = precondition(lambda self: self._pending is None and self._open_files() > 0)
    _put(cls, "arm_fault", lambda fn: rule(spec=fault_specs())(idle(fn)), GmemMachine._arm_fault)
    _put(cls, "arm_rollback_fault", lambda fn: rule(spec=fault_specs(rollback=True))(idle(fn)),
         GmemMachine._arm_fault)
    if "tdx" in cls.vm_types:
        tdx_idle = precondition(lambda self: self._pending is None and any(
            self._live(h) and g.fd_open and g.vm.vm_type == "tdx" for h in self._hosts for g in h.files))
        _put(cls, "arm_tdx_fault", lambda fn: rule(spec=fault_specs(tdx=True))(tdx_idle(fn)), GmemMachine._arm_fault)
    else:
        setattr(cls, "arm_tdx_fault", None)  # noqa: B010  (hide the parent class's rule)
    _put(cls, "munmap", rule(gmem=cls.gmems), GmemMachine._munmap)
    invalid = rule(gmem=cls.gmems, case=st.sampled_from(sorted(INVALID_SPANS)),
                   to=st.sampled_from(("shared", "private")), entry=st.sampled_from(("call", "ioctl")))
    _put(cls, "convert_invalid", invalid, GmemMachine._convert_invalid)
    _put(cls, "unpin", rule(pin=consumes(cls.pins)), GmemMachine._unpin)
    work = precondition(lambda self: any(self._live(h) and h.pending_work() for h in self._hosts))
    _put(cls, "flush_work", lambda fn: rule(host=cls.hosts)(work(fn)), GmemMachine._flush_work)
    vms = tuple(v for t in cls.vm_types for v in ((t, "tdx:leak") if t == "tdx" else (t,)))
    for ps in GEOMETRIES:
        if ps not in cls.page_sizes:  # hide the rules a parent class made for this page size
            for name in RULE_NAMES:
                setattr(cls, f"{name}_{ps}", None)
            continue
        geo = GEOMETRIES[ps]
        files = Bundle(f"gmem_{ps}")
        setattr(cls, f"gmem_{ps}", files)
        _geometry_rules(cls, geo, files, vms)


RULE_NAMES = ("create_file", "convert_shared", "convert_private", "guest", "host", "punch_hole", "fallocate",
              "pin", "close")


def _geometry_rules(cls: type[GmemMachine], geo: Geometry, files: Bundle[GuestMemfd],
                    vms: tuple[str, ...]) -> None:
    ps = geo.page_size

    def create(self: GmemMachine, host: Host, vm: str, mmap: bool, init_private: bool, populate: bool) -> Any:
        """A VM and a guest_memfd of this page size on ``host``; ``populate``: fallocate it whole."""
        return self._create(geo, host, vm, mmap, init_private, populate)

    def convert_shared(self: GmemMachine, gmem: GuestMemfd, span: tuple[int, int], entry: str) -> None:
        """Convert ``span`` to shared through ``entry``: "call" (``convert_shared``), "ioctl"
        (the revision's raw request) or "set_attributes" (ENOTTY under the RFC v2 uAPI)."""
        self._convert(geo, gmem, span, "shared", entry)

    def convert_private(self: GmemMachine, gmem: GuestMemfd, span: tuple[int, int], entry: str) -> None:
        """Convert ``span`` to private, through ``entry`` as for ``convert_shared``."""
        self._convert(geo, gmem, span, "private", entry)

    def guest(self: GmemMachine, gmem: GuestMemfd, at: int, op: str, byte: int) -> None:
        self._guest(geo, gmem, at, op, byte)

    def host_access(self: GmemMachine, gmem: GuestMemfd, access: tuple[int, int], op: str, byte: int) -> None:
        self._host_access(geo, gmem, access, op, byte)

    def punch_hole(self: GmemMachine, gmem: GuestMemfd, span: tuple[int, int]) -> None:
        self._fallocate(geo, gmem, span, "punch")

    def fallocate(self: GmemMachine, gmem: GuestMemfd, span: tuple[int, int]) -> None:
        self._fallocate(geo, gmem, span, "allocate")

    def pin(self: GmemMachine, gmem: GuestMemfd, span: tuple[int, int]) -> Any:
        return self._pin(geo, gmem, span)

    bools = st.sampled_from((True, False))
    mostly = st.sampled_from((True,) * 7 + (False,))  # a file without mmap is a dead end under rfc-v2
    room = precondition(lambda self: self._alive_files(ps) < type(self).max_files)
    _put(cls, f"create_file_{ps}", lambda fn: rule(targets=(files, cls.gmems), host=cls.hosts, vm=st.sampled_from(vms),
                                                   mmap=mostly, init_private=bools, populate=bools)(room(fn)),
         create)
    # close takes the file out of its page size's rules (they would only see EBADF); munmap,
    # which may release it, still sees it
    _put(cls, f"close_{ps}", rule(gmem=consumes(files)), GmemMachine._close)
    # set_attributes is ENOTTY under the RFC v2 uAPI: drawn only when an upstream host may exist
    upstream = any(REVISIONS[r].abi == "upstream" for r in cls.revisions)
    entries = st.sampled_from(("call", "ioctl", "call", "set_attributes") if upstream else ("call", "ioctl", "call"))
    _put(cls, f"convert_shared_{ps}", rule(gmem=files, span=spans(geo), entry=entries), convert_shared)
    _put(cls, f"convert_private_{ps}", rule(gmem=files, span=spans(geo), entry=entries), convert_private)
    _put(cls, f"guest_{ps}", rule(gmem=files, at=offsets(geo), op=st.sampled_from(("write", "read", "accept")),
                                  byte=st.integers(1, 255)), guest)
    _put(cls, f"host_{ps}", rule(gmem=files, access=accesses(geo), op=st.sampled_from(("write", "read")),
                                 byte=st.integers(1, 255)), host_access)
    _put(cls, f"punch_hole_{ps}", rule(gmem=files, span=spans(geo)), punch_hole)
    _put(cls, f"fallocate_{ps}", rule(gmem=files, span=spans(geo)), fallocate)
    _put(cls, f"pin_{ps}", rule(target=cls.pins, gmem=files, span=spans(geo)), pin)


def _put(cls: type, name: str, decorate: Callable[[Callable[..., Any]], Any], body: Callable[..., Any]) -> None:
    """A rule ``name`` on ``cls``: ``body`` then :meth:`GmemMachine.check_step`, named so the
    printed program calls ``state.<name>(...)``."""

    def step(self: GmemMachine, **kwargs: Any) -> Any:
        result = body(self, **kwargs)
        self.check_step()
        return result

    step.__name__ = name
    step.__qualname__ = f"{cls.__name__}.{name}"
    step.__doc__ = body.__doc__
    setattr(cls, name, decorate(step))


_install_rules(GmemMachine)
