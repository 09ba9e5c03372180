"""TDX VMs (mirrors the S-EPT side of arch/x86/kvm/vmx/tdx.c that guest_memfd reaches:
``tdx_sept_remove_private_spte`` -> ``TDH.MEM.RANGE.BLOCK``, ``TDH.MEM.TRACK``,
``TDH.MEM.PAGE.REMOVE``, ``TDH.PHYMEM.PAGE.WBINVD``; the S-EPT split before a partial
conversion -> ``TDH.MEM.PAGE.DEMOTE``; the guest's ``TDG.MEM.PAGE.ACCEPT``).

A TD's private pages live in the Secure EPT. The model keeps the S-EPT in the file's
``GuestMappings`` (private entries, with their level); shared entries there are the shared EPT.

What the model does, and the reading of upstream behind it (docs/tdx-and-vmm.md has the
sources):

* To-shared conversion removes the range from the S-EPT in its pre-check phase (RFC v2
  ``kvm_gmem_convert_should_proceed``); the ``prealloc`` revision demotes first and removes as
  its last step that can fail, after every allocation, so a failed conversion leaves the
  guest's pages mapped and accepted (Yan Zhao's requirement). Huge S-EPT entries straddling the
  range are demoted first (ENOMEM when the split's page table page cannot be allocated), so
  pages outside the range stay mapped and accepted.
* The S-EPT maps private memory at the level the guest accepted it; 4K entries are never
  promoted (no ``TDH.MEM.PAGE.PROMOTE`` in the model).
* ``TDX_OPERAND_BUSY`` is retried ``tdx_busy_retries`` times (upstream ``tdh_do_no_vcpus``: one
  retry with every vCPU kicked out, "expected to succeed"). A BUSY that outlives the retries is
  treated like any other error: ``TDX_BUG_ON`` -> ``KVM_BUG_ON``.
* A fatal SEAMCALL error WARNs (``KVM_BUG_ON`` is a ``WARN_ON_ONCE``) and bugs the VM under both
  policies (Yan: "The TDX VMs will be killed"). ``"bug-vm"`` (upstream, Sean's cleanup series):
  nothing is pinned; the model stops the conversion with EIO before anything changes (KVM's
  answer to a KVM_BUG_ON condition) instead of letting the page become shared while the TDX
  module may still map it. ``"leak"`` (Yan's ``tdx_hold_page_on_error``): the folio gets
  ``KVM_PAGES_PER_HPAGE(level)`` extra references held forever, so it is never freed or reused;
  guest_memfd's ``kvm_gmem_private_has_safe_refcount`` then fails the conversion with EFAULT.
* The page a removal cleared is zeroed (``tdx_quirk_reset_page``): TDX does not preserve
  contents across to-shared. A page that becomes private again (conversion, rollback, punch
  hole of a private page, a failed to-shared conversion after its removal) is PENDING: the
  guest must ``gmem.guest_accept()`` it (``TDG.MEM.PAGE.ACCEPT``, which zeroes it) before
  using it; touching a pending page raises :class:`UnacceptedAccess`. Private memory that has
  been private since the file was created counts as accepted (added at TD build time).
* A dead VM touches nothing: guest access and accept fail with EIO, conversions of its files
  fail with EIO before anything is allocated, no SEAMCALL is issued; zaps (punch hole, close)
  reclaim its S-EPT entries without SEAMCALLs (TD teardown's ``TDH.PHYMEM.PAGE.RECLAIM``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faults

from . import truncate
from .errors import EFAULT, EINVAL, EIO, ENOMEM, ConvFailure, GuestFault, oserror
from .folio import Block
from .intervals import IntervalMap
from .shareability import PRIVATE, SHARED
from .units import PAGE_SHIFT
from .vm import VM, VM_TYPES

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd
    from .host import Host

P_PAGE_REMOVE = faults.declare(
    "tdh_mem_page_remove", {"tdx_error"},
    """TDH.MEM.PAGE.REMOVE in tdx_sept_remove_private_spte(): removing a private page from the
    S-EPT (to-shared conversion, punch hole, release). TDX_OPERAND_BUSY is retried after kicking
    every vCPU out (tdh_do_no_vcpus); any other error, or BUSY after the retries, is a KVM or
    TDX-module bug: KVM_BUG_ON (the VM dies), and with tdx_fatal_policy="leak" the folio is
    held forever (tdx_hold_page_on_error) so it is never reused.""",
    reached="a private page mapped in a TDX VM's S-EPT is removed: a to-shared conversion, punch hole or "
    "release of a range the TDX guest has mapped private (vm_type='tdx', the guest accessed the "
    "page).",
)
P_SPLIT_ALLOC = faults.declare(
    "tdp_mmu_alloc_sp_for_split", {"ENOMEM"},
    """The page table page (and the S-EPT page behind it) that splitting a huge private S-EPT
    leaf needs, allocated before TDH.MEM.PAGE.DEMOTE (kvm_split_cross_boundary_leafs in the
    TDX huge page series: "may fail due to memory allocation for splitting ... fail the
    ioctl"). A to-shared conversion fails with ENOMEM before anything was removed; so does a
    punch hole ("bail out if kvm_gmem_split_private() returns error").""",
    reached="a huge private S-EPT leaf of a TDX VM straddles the edge of a conversion or punch-hole "
    "range: the TDX guest mapped a 2M/1G private page and the range covers only part of it.",
)
P_PAGE_DEMOTE = faults.declare(
    "tdh_mem_page_demote", {"tdx_error"},
    """TDH.MEM.PAGE.DEMOTE: splitting a 2M/1G S-EPT leaf into 4K entries before a conversion (or
    punch hole) that covers only part of it. BUSY is retried like the removal; a fatal error
    bugs the VM before anything was removed (nothing to leak).""",
    reached="as for tdp_mmu_alloc_sp_for_split, once the page table page is allocated: a huge private "
    "S-EPT leaf of a TDX VM is split.",
)

P_RANGE_BLOCK = faults.declare(
    "tdh_mem_range_block", {"tdx_error"},
    """TDH.MEM.RANGE.BLOCK, the first step of tdx_sept_remove_private_spte(): blocking the S-EPT
    entry so no new TLB entry can be made. BUSY is retried as for the removal; any other error
    is TDX_BUG_ON -> KVM_BUG_ON: the entry stays in the S-EPT (with "leak", the folio is held).""",
    reached="as for tdh_mem_page_remove: the first SEAMCALL of removing a private S-EPT entry of a TDX "
    "VM.",
)
P_TRACK = faults.declare(
    "tdh_mem_track", {"tdx_error"},
    """TDH.MEM.TRACK in tdx_track(), between the block and the removal: bumping the TD's TLB
    epoch. BUSY is retried; any other error is TDX_BUG_ON (the VM is bugged) and the removal
    that follows cannot succeed (TLB tracking not done): the entry stays in the S-EPT.""",
    reached="as for tdh_mem_page_remove: between the block and the removal of a private S-EPT entry of a "
    "TDX VM.",
)
P_WBINVD = faults.declare(
    "tdh_phymem_page_wbinvd_hkid", {"tdx_error"},
    """TDH.PHYMEM.PAGE.WBINVD after a successful removal: writing back and invalidating the
    page's cache lines under the TD's key. Not retried; an error is TDX_BUG_ON: the entry is
    out of the S-EPT but the page is neither flushed nor reset (tdx_quirk_reset_page and
    tdx_pamt_put are skipped), so its old contents stay; with "leak" the folio is held.""",
    reached="as for tdh_mem_page_remove, after a successful TDH.MEM.PAGE.REMOVE.",
)

#: the SEAMCALLs of one S-EPT entry's removal, in the kernel's order
REMOVE_STAGES = (P_RANGE_BLOCK, P_TRACK, P_PAGE_REMOVE, P_WBINVD)
#: the SEAMCALLs KVM retries on TDX_OPERAND_BUSY (tdh_do_no_vcpus); WBINVD is not
RETRIED = frozenset({P_RANGE_BLOCK, P_TRACK, P_PAGE_REMOVE, P_PAGE_DEMOTE})
FATAL_POLICIES = ("bug-vm", "leak")
#: upstream ``tdh_do_no_vcpus``: one retry once no vCPU can enter the TD
TDX_BUSY_RETRIES = 1
SEAMCALL_NAMES = {P_PAGE_REMOVE.name: "TDH.MEM.PAGE.REMOVE", P_PAGE_DEMOTE.name: "TDH.MEM.PAGE.DEMOTE",
                  P_RANGE_BLOCK.name: "TDH.MEM.RANGE.BLOCK", P_TRACK.name: "TDH.MEM.TRACK",
                  P_WBINVD.name: "TDH.PHYMEM.PAGE.WBINVD"}


class UnacceptedAccess(GuestFault):
    """The guest touched a private page whose S-EPT entry is PENDING (converted to private,
    or re-added after a removal) before accepting it. With ``SEPT_VE_DISABLE`` (what Linux TDX
    guests run with) this is an EPT violation the TD cannot recover from; without it a #VE. The
    guest must ``TDG.MEM.PAGE.ACCEPT`` the page first (``gmem.guest_accept``)."""

    def __init__(self, offset: int, why: str) -> None:
        super().__init__(EFAULT, offset, why)


@dataclass(eq=False)
class Leak:
    """A folio TDX holds after a fatal removal (``tdx_hold_page_on_error``): the references
    are one of the block's pins (owner: this record), never dropped."""

    gmem: GuestMemfd
    block: Block
    start: int  # the folio the references are on (index range)
    end: int
    level: str  # the S-EPT level that failed
    error: str  # the TDX status
    left_filemap: bool = False  # seen out of the filemap (punch hole, eviction) by a check

    def resident(self) -> bool:
        """Whether the held folio is still in its file's filemap."""
        g = self.gmem
        return bool(g.alive and g.filemap.resident(self.block, self.start, self.end))

    def __repr__(self) -> str:
        return f"Leak([{self.start << PAGE_SHIFT:#x}, {self.end << PAGE_SHIFT:#x}) {self.level} {self.error})"


@dataclass
class _Frozen:
    """What a dead VM's files looked like when it died (a dead VM touches nothing)."""

    sept: dict[GuestMemfd, set[tuple[int, int, str]]] = field(default_factory=dict)
    pending: dict[GuestMemfd, list[tuple[int, int]]] = field(default_factory=dict)


class TdxVM(VM):
    """A TD (``KVM_X86_TDX_VM``). Options: ``tdx_fatal_policy`` ("bug-vm" or "leak") and
    ``tdx_busy_retries`` (how often TDX_OPERAND_BUSY is retried; upstream 1)."""

    vm_type = "tdx"
    preserves_contents = False
    #: ``tdx_gmem_max_mapping_level``: private memory is mapped at 2M at most (the TDX huge
    #: page series; a 1G folio is mapped as 2M S-EPT entries)
    max_private_level = "2M"

    def __init__(self, host: Host, tdx_fatal_policy: str = "bug-vm",
                 tdx_busy_retries: int = TDX_BUSY_RETRIES, **options: Any) -> None:
        super().__init__(host, **options)
        if tdx_fatal_policy not in FATAL_POLICIES:
            raise ValueError(f"tdx_fatal_policy {tdx_fatal_policy!r} is not one of "
                             f"{', '.join(repr(p) for p in FATAL_POLICIES)}")
        if isinstance(tdx_busy_retries, bool) or not isinstance(tdx_busy_retries, int) or tdx_busy_retries < 0:
            raise ValueError(f"tdx_busy_retries must be an integer >= 0, got {tdx_busy_retries!r}")
        self.fatal_policy = tdx_fatal_policy
        self.busy_retries = tdx_busy_retries
        self._pending: dict[GuestMemfd, IntervalMap[bool]] = {}  # PENDING private pages per file
        self.leaks: list[Leak] = []
        self._frozen = _Frozen()
        self.seamcalls = 0
        self.seamcalls_while_dead = 0

    # --- accept state ---------------------------------------------------------------------
    def pending(self, g: GuestMemfd) -> IntervalMap[bool]:
        m = self._pending.get(g)
        if m is None:
            m = self._pending[g] = IntervalMap()
        return m

    def pending_ranges(self, g: GuestMemfd) -> list[tuple[int, int]]:
        """Private pages the guest must accept before use, as byte ranges."""
        return [(s << PAGE_SHIFT, e << PAGE_SHIFT) for s, e, _ in self.pending(g).items()]

    def leaked_pages(self) -> int:
        """4K pages held forever by ``tdx_hold_page_on_error``."""
        return sum(lk.end - lk.start for lk in self.leaks)

    # --- arch hooks guest_memfd calls -------------------------------------------------------
    def precheck_convert(self, g: GuestMemfd, start: int, end: int, to_shared: bool) -> None:
        """To shared: demote the huge S-EPT entries straddling the range (``ConvFailure`` ENOMEM
        when the split's page table page cannot be allocated, EIO on a fatal SEAMCALL error),
        and fail (EFAULT) when a folio of the range is held by TDX after an earlier failure
        (``kvm_gmem_private_has_safe_refcount``, Yan's proposal). Changes nothing the guest sees."""
        if not to_shared:
            return
        self._demote(g, start, end, converting=True)
        self._check_held(g, start, end)

    def remove_for_convert(self, g: GuestMemfd, start: int, end: int) -> None:
        """``tdx_sept_remove_private_spte`` on every private entry of a to-shared work item
        (the pages are cleared and, if the conversion fails, come back PENDING); a fatal error
        bugs the VM: under "bug-vm" ``ConvFailure`` EIO, under "leak" the folio is held and
        ``kvm_gmem_private_has_safe_refcount`` fails the conversion (EFAULT)."""
        failed = self._remove(g, start, end)
        if failed is not None and self.fatal_policy == "bug-vm":
            index, seamcall = failed
            raise ConvFailure(EIO, index, f"{seamcall} at {index << PAGE_SHIFT:#x} failed; "
                                          f"KVM_BUG_ON: the TD is dead")
        self._check_held(g, start, end)

    def _check_held(self, g: GuestMemfd, start: int, end: int) -> None:
        """``kvm_gmem_private_has_safe_refcount`` (Yan's proposal): EFAULT when a folio of
        ``[start, end)`` is held by TDX (``tdx_hold_page_on_error``)."""
        for lk in self.leaks:
            if lk.gmem is g and lk.start < end and lk.end > start and lk.resident():
                raise ConvFailure(EFAULT, None, f"kvm_gmem_private_has_safe_refcount: folio at "
                                                f"{lk.start << PAGE_SHIFT:#x} is held by TDX after "
                                                f"a failed {lk.level} removal ({lk.error})")

    def may_map_huge(self, g: GuestMemfd, start: int, end: int) -> bool:
        """TDX maps private memory at the level the guest accepted it: a huge S-EPT leaf only
        where nothing of ``[start, end)`` is PENDING and no 4K entry is there already (the model
        has no TDH.MEM.PAGE.PROMOTE: 4K entries stay 4K)."""
        if next(iter(self.pending(g).items(start, end)), None) is not None:
            return False
        return next(iter(g.guest.map.items(start, end)), None) is None

    def rollback_state(self, g: GuestMemfd, start: int, end: int) -> object:
        """The accept state of ``[start, end)``: a failed conversion that removed nothing
        leaves it as it was."""
        return tuple((s << PAGE_SHIFT, e << PAGE_SHIFT) for s, e, _ in self.pending(g).items(start, end))

    def unmap_private(self, g: GuestMemfd, start: int, end: int) -> None:
        """``kvm_gmem_unmap_private``: normally nothing is left, ``prepare_convert`` removed it."""
        if not self.dead:
            self._remove_range(g, start, end)

    def zap_all(self, g: GuestMemfd, start: int, end: int) -> None:
        """``kvm_gmem_invalidate_begin_and_zap`` (punch hole, release): shared EPT entries go,
        private ones are removed from the S-EPT (fatal errors bug the VM, never fail the call; punch
        hole fails with OSError ENOMEM, before anything changes, when a straddling huge S-EPT
        entry cannot be split)."""
        g.guest.zap(start, end, private=False)
        if not self.dead:
            self._remove_range(g, start, end)
        if self.dead:
            self._reclaim(g, start, end)
            return
        if not g.released:  # punch hole: re-faulted private pages come back PENDING
            for s, e, v in g.share.ranges(start, min(end, g.nr_pages)):
                if v == PRIVATE:
                    self.pending(g).assign(s, e, True)

    def converted(self, g: GuestMemfd, start: int, end: int, to_shared: bool) -> None:
        """Shared pages have no accept state; pages that became private must be accepted."""
        if to_shared:
            self.pending(g).clear(start, end)
        else:
            self.pending(g).assign(start, end, True)

    def guest_access_private(self, g: GuestMemfd, start: int, end: int, write: bool) -> None:
        """The TD touches private pages: a PENDING one raises :class:`UnacceptedAccess`."""
        hit = next(iter(self.pending(g).items(start, end)), None)
        if hit is not None:
            off = hit[0] << PAGE_SHIFT
            raise UnacceptedAccess(off, f"the private page at {off:#x} is PENDING in the S-EPT "
                                        "(not accepted since it became private); the guest must "
                                        "TDG.MEM.PAGE.ACCEPT it (gmem.guest_accept) before use")

    def guest_accept(self, g: GuestMemfd, start: int, end: int) -> None:
        """``TDG.MEM.PAGE.ACCEPT`` page by page: a shared page fails (GuestFault EINVAL, pages
        before it accepted); a missing page is faulted in (``TDH.MEM.PAGE.AUG``); a pending page
        is zeroed and becomes usable; an accepted page is left alone."""
        self.check_alive(start << PAGE_SHIFT)
        for s, e, v in g.share.ranges(start, end):
            if v == SHARED:
                raise GuestFault(EINVAL, s << PAGE_SHIFT, "TDG.MEM.PAGE.ACCEPT of a shared GPA")
            truncate.get_folios(g, s, e)
            for ps, pe, _ in list(self.pending(g).items(s, e)):
                g.contents.zero(ps, pe)
            self.pending(g).clear(s, e)
            g._map_guest(s, e, True)

    # --- S-EPT removal ------------------------------------------------------------------------
    def _remove_range(self, g: GuestMemfd, start: int, end: int) -> None:
        """Demote the huge S-EPT entries straddling ``[start, end)``, then remove every private
        entry in it; fatal errors bug the VM and are not reported to the caller (zaps)."""
        if self._demote(g, start, end, converting=False):
            self._remove(g, start, end)

    def _demote(self, g: GuestMemfd, start: int, end: int, converting: bool) -> bool:
        """``tdx_sept_split_private_spt`` (``TDH.MEM.PAGE.DEMOTE``) on every huge private entry
        straddling ``[start, end)``, after allocating the page table page the split needs
        (``tdp_mmu_alloc_sp_for_split``: ENOMEM). ``converting``: failures raise ConvFailure
        (ENOMEM; EIO after a fatal error); in a zap, ENOMEM is an OSError (punch hole fails
        before anything changed) and a fatal error returns False (the VM is bugged)."""
        for s, e, m in list(g.guest.map.items(start, end, clip=False)):
            if not m.private or m.level == "4K" or (start <= s and e <= end):
                continue
            f = P_SPLIT_ALLOC.hit(index=s, level=m.level, start=start, end=end)
            if f is not None:
                self.host.note_fault(f)
                why = (f"tdp_mmu_alloc_sp_for_split: no page table page to split the {m.level} "
                       f"S-EPT entry at {s << PAGE_SHIFT:#x}")
                if converting:
                    raise ConvFailure(ENOMEM, None, why)
                raise oserror(ENOMEM, why)
            err = self._seamcall(P_PAGE_DEMOTE, index=s, level=m.level, start=start, end=end)
            if err is None:
                g.guest.map.clear(s, e)
                g.guest.install(s, e, "4K", True)
                continue
            self._bug(g, "tdx_sept_split_private_spt", P_PAGE_DEMOTE, err, s, m.level)
            if converting:
                raise ConvFailure(EIO, s, f"TDH.MEM.PAGE.DEMOTE of the {m.level} S-EPT entry at "
                                          f"{s << PAGE_SHIFT:#x} failed with {err.code}")
            return False
        return True

    def _remove(self, g: GuestMemfd, start: int, end: int) -> tuple[int, str] | None:
        """Remove every private S-EPT entry in ``[start, end)`` (huge ones whole); returns the
        index and SEAMCALL whose failure was fatal, or None."""
        for s, e, m in list(g.guest.map.items(start, end, clip=False)):
            if not m.private:
                continue
            if m.level != "4K":
                bad = self._remove_pages(g, s, e, m.level)
            else:
                bad = self._remove_pages(g, max(s, start), min(e, end), "4K")
            if bad is not None:
                return bad
        return None

    def _remove_pages(self, g: GuestMemfd, start: int, end: int, level: str) -> tuple[int, str] | None:
        """``tdx_sept_remove_private_spte`` on each S-EPT entry of ``[start, end)`` (one huge
        entry, or a run of 4K ones): TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, TDH.MEM.PAGE.REMOVE (each
        with the BUSY retry of ``tdh_do_no_vcpus``), TDH.PHYMEM.PAGE.WBINVD, then the page reset.
        Returns the index and SEAMCALL that failed fatally (the VM is bugged), or None.

        When none of the four points is armed nothing can fail, and each stage is hit once for
        the whole run (hit_many: a 1G range of 4K entries stays O(1); the hit counts are the
        kernel's, a recorded trace shows them stage by stage). Otherwise entry by entry, in the
        kernel's order."""
        step = end - start if level != "4K" else 1
        n = (end - start) // step
        if not faults.armed(*REMOVE_STAGES):
            for point in REMOVE_STAGES:
                point.hit_many(n, index=start, level=level, attempt=0)
            self.seamcalls += n * len(REMOVE_STAGES)
            self._removed(g, start, end)
            return None
        for k in range(n):
            idx = start + k * step
            for point in REMOVE_STAGES:
                self.seamcalls += 1
                f = point.hit(index=idx, level=level, attempt=0)
                if f is None:
                    continue
                err = self._retry(point, f, index=idx, level=level)
                if err is None:
                    continue
                self._removed(g, start, idx)
                if point is P_WBINVD:  # out of the S-EPT, but neither flushed nor reset
                    self._removed(g, idx, idx + step, reset=False)
                self._bug(g, "tdx_sept_remove_private_spte", point, err, idx, level)
                if self.fatal_policy == "leak":
                    self._hold(g, idx, idx + step, level, err.code)
                return idx, SEAMCALL_NAMES[point.name]
        self._removed(g, start, end)
        return None

    def _removed(self, g: GuestMemfd, start: int, end: int, reset: bool = True) -> None:
        """The entries left the S-EPT: the pages are cleared (``tdx_quirk_reset_page``; not
        after a failed WBINVD, ``reset=False``) and come back PENDING if they stay private."""
        if start >= end:
            return
        g.guest.map.clear(start, end)
        if reset:
            g.contents.zero(start, end)
        self.pending(g).assign(start, end, True)

    def _hold(self, g: GuestMemfd, start: int, end: int, level: str, error: str) -> None:
        """``tdx_hold_page_on_error``: ``folio_ref_add(folio, KVM_PAGES_PER_HPAGE(level))`` -
        the whole folio (huge or 4K) containing the failed entry is held forever."""
        run = g.filemap.lookup(start)
        if run is None:  # the S-EPT mapped a page the filemap does not hold: nothing to hold
            self.host.warn("tdx_hold_page_on_error", f"no folio at index {start:#x}")
            return
        fs, fe = (run.start, run.end) if run.folio_nr > 1 else (start, end)
        fs, fe = min(fs, start), max(fe, end)
        lk = Leak(g, run.block, fs, fe, level, error)
        run.block.pins.append((fs, fe, lk))
        self.leaks.append(lk)

    def _reclaim(self, g: GuestMemfd, start: int, end: int) -> None:
        """A dead TD's S-EPT entries in the range are reclaimed with the TD (no fault point)."""
        g.guest.zap(start, end, None)

    # --- SEAMCALL errors ------------------------------------------------------------------------
    def _seamcall(self, point: faults.FaultPoint, **ctx: Any) -> faults.TdxError | None:
        """One SEAMCALL at ``point`` with BUSY retries; returns the final error or None."""
        self.seamcalls += 1
        if self.dead:
            self.seamcalls_while_dead += 1
        f = point.hit(attempt=0, **ctx)
        if f is None:
            return None
        return self._retry(point, f, **ctx)

    def _retry(self, point: faults.FaultPoint, fired: faults.Fired, **ctx: Any) -> faults.TdxError | None:
        """``tdh_do_no_vcpus``: TDX_OPERAND_BUSY is retried ``busy_retries`` times (a SEAMCALL KVM
        does not retry, TDH.PHYMEM.PAGE.WBINVD, keeps its first error)."""
        self.host.note_fault(fired)
        kind = fired.kind
        attempt = 0
        while isinstance(kind, faults.TdxError) and kind.retryable and attempt < self._retries(point):
            attempt += 1
            self.seamcalls += 1
            f = point.hit(attempt=attempt, **ctx)
            if f is None:
                return None
            self.host.note_fault(f)
            kind = f.kind
        return kind if isinstance(kind, faults.TdxError) else None

    def _retries(self, point: faults.FaultPoint) -> int:
        return self.busy_retries if point in RETRIED else 0

    def _bug(self, g: GuestMemfd, where: str, point: faults.FaultPoint, err: faults.TdxError,
             index: int, level: str) -> None:
        """``TDX_BUG_ON`` -> ``KVM_BUG_ON``: WARN, the VM is dead, its state frozen."""
        busy = " after the retries" if err.retryable and self._retries(point) else ""
        why = (f"SEAMCALL {SEAMCALL_NAMES[point.name]} failed: {err.code} ({err.status:#x}){busy}, "
               f"{level} entry at {index << PAGE_SHIFT:#x}")
        self.host.warn(where, f"KVM_BUG_ON: {why}")
        if self.dead:
            return
        self.dead = True
        self.death = why
        for f in self.files:
            self._frozen.sept[f] = {(s, e, m.level) for s, e, m in f.guest.ranges() if m.private}
            self._frozen.pending[f] = [(s, e) for s, e, _ in self.pending(f).items()]

    # --- invariants and the state map --------------------------------------------------------
    def check_file(self, g: GuestMemfd, name: str) -> list[str]:
        """TDX invariants of one file (picked up by invariants.py)."""
        out: list[str] = []
        sept = [(s, e, m) for s, e, m in g.guest.ranges() if m.private]
        for s, e, m in sept:
            for i, hm in enumerate(g.mappings):
                for hs, he, _ in hm.ptes.items(s, e):
                    out.append(f"[tdx sept] {name}: [{_o(hs)}, {_o(he)}) is in the S-EPT ({m.level}) "
                               f"and mapped by host mapping #{i}")
            for ps, pe, _ in self.pending(g).items(s, e):
                out.append(f"[tdx accept] {name}: [{_o(ps)}, {_o(pe)}) is PENDING but mapped in the S-EPT")
        for s, e, _ in self.pending(g).items():
            for ss, se, v in g.share.ranges(s, min(e, g.nr_pages)):
                if v == SHARED:
                    out.append(f"[tdx accept] {name}: shared pages [{_o(ss)}, {_o(se)}) have an accept state")
        if self.dead:
            frozen = self._frozen.sept.get(g, set())
            for s, e, m in sept:
                if not any(fs <= s and e <= fe for fs, fe, _ in frozen):
                    out.append(f"[tdx dead] {name}: S-EPT entry [{_o(s)}, {_o(e)}) {m.level} "
                               "appeared after the VM died")
            now = [(s, e) for s, e, _ in self.pending(g).items()]
            before = self._frozen.pending.get(g)
            if before is not None and now != before:
                out.append(f"[tdx dead] {name}: accept state changed after the VM died")
        return out

    def check_vm(self) -> list[str]:
        """TDX invariants of the VM as a whole: held folios stay held and are never reused."""
        out: list[str] = []
        if self.seamcalls_while_dead:
            out.append(f"[tdx dead] {self.seamcalls_while_dead} SEAMCALL(s) issued after the VM died")
        for lk in self.leaks:
            b = lk.block
            if not any(owner is lk for _, _, owner in b.pins):
                out.append(f"[tdx leak] {lk!r}: the held references on {b!r} are gone")
            if b.huge and b not in self.host.live_blocks:
                out.append(f"[tdx leak] {lk!r}: huge page {b!r} went back to the pool")
            if b.freed > b.nr - (lk.end - lk.start):
                out.append(f"[tdx leak] {lk!r}: {b!r} freed pages TDX still holds")
            if lk.resident():
                if lk.left_filemap:
                    out.append(f"[tdx leak] {lk!r}: a held folio was added back to the filemap")
            else:
                lk.left_filemap = True
        return out

    def render_file(self, g: GuestMemfd) -> list[str]:
        """State-map lines: accept state, held folios, death."""
        out = []
        pend = " ".join(f"[{s:#x}, {e:#x})" for s, e in self.pending_ranges(g)[:8])
        out.append(f"  tdx ({self.fatal_policy}): pending {pend or '(none)'}")
        held = [repr(lk) for lk in self.leaks if lk.gmem is g]
        if held:
            out.append("  tdx held: " + " ".join(held[:8]))
        if self.dead:
            out.append(f"  tdx: VM DEAD ({self.death})")
        return out

    def __repr__(self) -> str:
        return (f"TdxVM(policy={self.fatal_policy!r}, files={len(self.files)}, "
                f"leaked={self.leaked_pages()}{', dead' if self.dead else ''})")


def _o(index: int) -> str:
    return f"{index << PAGE_SHIFT:#x}"


VM_TYPES["tdx"] = TdxVM
