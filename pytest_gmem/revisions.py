"""The kernel revisions the model follows: one record per revision, read by the model (its
defect flags, its ABI), the plugin (the default, the option's help and checks), the design
comparison (row order, the pattern each row must show) and the docs.

Pure data, no import of the model: the plugin reads it at load time. Adding a revision is one
:class:`Revision` in :data:`REVISIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The uAPIs a revision can speak (``Revision.abi``).
ABIS = ("rfc-v2", "upstream")
#: What a revision's rows of the design comparison must show (``Revision.expect``), in words.
EXPECTATIONS = {
    "defects": "KernelBug and WARN scenarios (its known defects)",
    "no-kernel-bug": "no KernelBug scenario",
    "clean": "only clean or successful scenarios",
}


@dataclass(frozen=True)
class Revision:
    """Which behaviour of the conversion code the model follows."""

    name: str
    summary: str
    #: defect 1: ``for (index -= n; index >= start; index -= n)`` on unsigned pgoff_t
    rollback_underflow: bool
    #: defect 3: ``filemap_remove_folio_for_restructuring`` spins without bound (WARN_ONCE)
    unbounded_spin: bool
    #: defect 4 fixed: ``error_offset`` = start of the request on ENOMEM
    error_offset_on_enomem: bool
    #: v8 style: every check and allocation before the point of no return
    prealloc: bool
    #: defect 5: ``kvm_gmem_convert_compute_work``'s loop declares its own ``int ret``, so a
    #: failed ``add_to_work_list`` kzalloc breaks out and the function returns 0: the ioctl
    #: converts the items computed so far and reports success
    compute_work_ret_shadowed: bool = False
    #: defect 6 [reading of the code]: the inner rollback of ``kvm_gmem_restructure_folios_in_range``
    #: undoes every huge page before the failing one, including those the forward loop left
    #: alone (a huge page split before the conversion, around a shared page, gets merged: a huge
    #: folio over a shared page, with no WARN)
    rollback_undoes_untouched: bool = False
    #: a host fault past EOF (the mmap is not limited to the file) reaches
    #: ``kvm_gmem_shareability_get`` with no entry and WARNs before the SIGBUS (Yan Zhao's report)
    fault_past_eof_warns: bool = False
    #: defect 7 [reading of the code, found by a random walk]: when the merge before truncation
    #: fails, ``kvm_gmem_merge_truncate_indices`` WARNs and truncates only the folio it looked up
    #: (the first 4K piece): the punch hole reports success, the other pieces keep their data,
    #: and the next fault in the huge page finds them (``-EEXIST``, retried without end)
    truncate_only_first_on_merge_failure: bool = False
    #: the uAPI: "rfc-v2" (KVM_GMEM_CONVERT_SHARED/PRIVATE, SUPPORT_SHARED / INIT_PRIVATE, shared
    #: by default) or "upstream" (KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd fd, MMAP /
    #: INIT_SHARED, private by default)
    abi: str = "rfc-v2"
    #: HugeTLB backing: "series" (part of the posted series) or "wip" (only on the authors' work
    #: branches: unmerged, opt-in with ``Host(wip_hugetlb=True)``)
    hugetlb: str = "series"
    #: the work branch's fix of the January 2026 race: ``hugetlb_fault_mutex_lock`` serialises
    #: two faults allocating in the same huge page (without it the loser sees the subpool at its
    #: maximum: ENOMEM at ``hugepage_subpool_get_pages``)
    hugetlb_fault_mutex: bool = False
    #: what its rows of the design comparison must show (a key of :data:`EXPECTATIONS`)
    expect: str = "clean"
    #: the version of the series it follows, with the mails or branch read
    follows: str = ""

    def __reduce_ex__(self, protocol: Any) -> Any:
        """A registered revision pickles (and deep-copies) as its name: a sweep's per-scenario
        state copy shares the one instance instead of rebuilding all its fields."""
        if REVISIONS.get(self.name) is self:
            return (get_revision, (self.name,))
        return super().__reduce_ex__(protocol)

    @property
    def has_rollback(self) -> bool:
        """Whether a failure part-way through a conversion is undone (a rollback phase, whose
        hits a depth-2 sweep fails a second time); a ``prealloc`` revision checks and allocates
        everything before its point of no return, so it has none."""
        return not self.prealloc


REVISIONS: dict[str, Revision] = {
    "rfc-v2": Revision(
        "rfc-v2",
        "RFC v2 as posted (May 2025), its known defects included",
        rollback_underflow=True, unbounded_spin=True, error_offset_on_enomem=False, prealloc=False,
        compute_work_ret_shadowed=True, fault_past_eof_warns=True, rollback_undoes_untouched=True,
        truncate_only_first_on_merge_failure=True, expect="defects",
        follows="[RFC PATCH v2 00/51] 1G page support for guest_memfd (May 2025)",
    ),
    "fixed": Revision(
        "fixed",
        "rfc-v2 with the review's fixes: no underflow, bounded spinning reporting EAGAIN, "
        "error_offset = start on ENOMEM, compute_work's ENOMEM returned, the inner rollback undoes "
        "only what the forward loop changed, a punch hole whose merge fails truncates the 4K pieces "
        "(the page merges when they are freed); rollback failures still only WARN",
        rollback_underflow=False, unbounded_spin=False, error_offset_on_enomem=True, prealloc=False,
        expect="no-kernel-bug", follows="RFC v2 with the fixes its review asked for (and ours)",
    ),
    "prealloc": Revision(
        "prealloc",
        "in-place conversion v8 style: all checks and allocations before the point of no return, "
        "keeping HugeTLB split/merge and the RFC v2 uAPI; nothing can fail after it",
        rollback_underflow=False, unbounded_spin=False, error_offset_on_enomem=True, prealloc=True,
        expect="clean", follows="the v8 conversion order applied to the RFC v2 uAPI and HugeTLB",
    ),
    "upstream": Revision(
        "upstream",
        "the in-place conversion series as in linux-next: KVM_SET_MEMORY_ATTRIBUTES2 on the "
        "guest_memfd fd, GUEST_MEMFD_FLAG_MMAP / INIT_SHARED (private by default), every check and "
        "allocation before the point of no return, no rollback; HugeTLB only from the authors' "
        "work branch (unmerged, Host(wip_hugetlb=True))",
        rollback_underflow=False, unbounded_spin=False, error_offset_on_enomem=True, prealloc=True,
        abi="upstream", hugetlb="wip", hugetlb_fault_mutex=True, expect="clean",
        follows="in-place conversion v8 (June 2026) and later, see docs/model.md",
    ),
}
DEFAULT_REVISION = "fixed"


def revision_names() -> tuple[str, ...]:
    """The revisions in design order (the comparison's row order)."""
    return tuple(REVISIONS)


def get_revision(name: str, source: str = "revision") -> Revision:
    """The revision called ``name``; ValueError naming the value and where it came from."""
    try:
        return REVISIONS[name]
    except KeyError:
        from faults.errors import suggest

        hint = suggest(str(name), REVISIONS)
        raise ValueError(
            f"unknown kernel revision {name!r} from {source}; choose one of "
            f"{', '.join(REVISIONS)}{hint}"
        ) from None
