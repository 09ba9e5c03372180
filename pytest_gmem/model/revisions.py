"""Kernel revisions the model can follow (``Host(revision=...)``)."""

from __future__ import annotations

from dataclasses import dataclass


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


REVISIONS: dict[str, Revision] = {
    "rfc-v2": Revision(
        "rfc-v2",
        "RFC v2 as posted (May 2025), its known defects included",
        rollback_underflow=True, unbounded_spin=True, error_offset_on_enomem=False, prealloc=False,
        compute_work_ret_shadowed=True, fault_past_eof_warns=True, rollback_undoes_untouched=True,
        truncate_only_first_on_merge_failure=True,
    ),
    "fixed": Revision(
        "fixed",
        "rfc-v2 with the review's fixes: no underflow, bounded spinning reporting EAGAIN, "
        "error_offset = start on ENOMEM, compute_work's ENOMEM returned, the inner rollback undoes "
        "only what the forward loop changed, a punch hole whose merge fails truncates the 4K pieces "
        "(the page merges when they are freed); rollback failures still only WARN",
        rollback_underflow=False, unbounded_spin=False, error_offset_on_enomem=True, prealloc=False,
    ),
    "prealloc": Revision(
        "prealloc",
        "in-place conversion v8 style: all checks and allocations before the point of no return, "
        "keeping HugeTLB split/merge; nothing can fail after it",
        rollback_underflow=False, unbounded_spin=False, error_offset_on_enomem=True, prealloc=True,
    ),
}
DEFAULT_REVISION = "fixed"

#: where the kernel would spin forever, the model gives up after this many iterations
KERNEL_BUG_SPIN_LIMIT = 10_000
#: ``fixed`` / ``prealloc``: spins on a speculative reference before reporting EAGAIN
SPIN_RETRY_LIMIT = 64
#: rollback-loop iterations past an unsigned wrap before the model reports the underflow
UNDERFLOW_STEP_LIMIT = 1_000


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
