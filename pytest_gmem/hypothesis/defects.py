"""What the state machine counts as a defect, and which WARNs are legitimate.

Pure data and functions over one step's :class:`Outcome` (no import of Hypothesis): the machine
builds the outcome, :func:`classify` names what went wrong, each problem under the defect of
RFC v2 it is a symptom of (the numbering of docs/model.md and tests/model/test_defects.py), or
under none when it is unexplained (always a failure).

Legitimate WARNs (not failures; :func:`tolerated`):

* ``tdx-bug``: a ``KVM_BUG_ON`` WARN after an injected fatal (or retried-out BUSY) SEAMCALL
  error, under every revision: the VM is bugged on purpose, the TDX invariants still hold.
* ``rollback-warn`` under ``fixed`` (defect 2, kept by design: "rollback failures still only
  WARN"): a WARN at an undo site of a conversion when the undo itself met a fault, i.e. a fault
  fired in the ``rollback`` phase (the machine's depth-2 fault) or a fault whose references
  outlive the operation that armed it fired (``extra_refcount``, ``speculative_refcount`` with
  ``hold=none``). The kernel knows its state is inconsistent; the host is retired (its
  invariants are no longer promised) and the run goes on with new hosts.

Nothing else may WARN: under ``prealloc`` and ``upstream`` only ``tdx-bug``.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..revisions import Revision


@dataclass(frozen=True)
class Defect:
    """A known defect of a revision: its name (what ``GmemMachine.target`` takes), the number
    docs/model.md gives it, the :class:`~pytest_gmem.revisions.Revision` flag that carries it."""

    name: str
    number: int | None
    flag: str | None
    summary: str

    def present_in(self, revision: Revision) -> bool:
        if self.name == "rollback-warn":
            return not revision.prealloc  # rfc-v2 and fixed roll back, and only WARN when that fails
        if self.name == "tdx-bug":
            return True
        if self.flag == "error_offset_on_enomem":
            return not revision.error_offset_on_enomem
        return bool(self.flag and getattr(revision, self.flag))


DEFECTS: dict[str, Defect] = {d.name: d for d in (
    Defect("rollback-underflow", 1, "rollback_underflow",
           "a failed split at index 0: the unsigned rollback loop never ends (KernelBug)"),
    Defect("rollback-warn", 2, None,
           "a failure inside a rollback only WARNs and leaves the file inconsistent"),
    Defect("unbounded-spin", 3, "unbounded_spin",
           "folio_ref_freeze spins without bound on a speculative reference (WARN_ONCE, KernelBug)"),
    Defect("garbage-error-offset", 4, "error_offset_on_enomem",
           "error_offset is uninitialised stack on ENOMEM"),
    Defect("shadowed-ret", 5, "compute_work_ret_shadowed",
           "compute_work's kzalloc failure is swallowed: success reported, the range not converted"),
    Defect("rollback-undoes-untouched", 6, "rollback_undoes_untouched",
           "the inner rollback merges a huge page split before the conversion, over its shared page"),
    Defect("partial-punch", 7, "truncate_only_first_on_merge_failure",
           "a punch hole whose merge fails WARNs, truncates one 4K piece and reports success"),
    Defect("fault-past-eof-warn", None, "fault_past_eof_warns",
           "a host fault past the end of the file WARNs in kvm_gmem_shareability_get"),
    Defect("tdx-bug", None, None,
           "KVM_BUG_ON after a fatal SEAMCALL error: the VM is bugged (legitimate under every revision)"),
)}
#: the defects a state machine can be asked to find (``target``): RFC v2's, in number order
TARGETS = tuple(n for n, d in DEFECTS.items() if n != "tdx-bug")

#: where a conversion's undo paths WARN when the undo fails
ROLLBACK_WARN_SITES = frozenset({
    "kvm_gmem_convert_range", "kvm_gmem_split_folio_in_filemap", "kvm_gmem_merge_folio_in_filemap",
    "kvm_gmem_restructure_folios_in_range",
})
TDX_BUG_SITES = frozenset({"tdx_sept_remove_private_spte", "tdx_sept_split_private_spt"})
KERNEL_BUG_DEFECTS = {
    "kvm_gmem_restructure_folios_in_range": "rollback-underflow",
    "filemap_remove_folio_for_restructuring": "unbounded-spin",
    "kvm_gmem_get_folio": "partial-punch",  # the -EEXIST livelock over the pieces left behind
    "kvm_gmem_merge_folio_in_filemap": "rollback-warn",  # a piece an earlier failed undo lost
}
WARN_DEFECTS = {
    "filemap_remove_folio_for_restructuring": "unbounded-spin",
    "kvm_gmem_merge_truncate_indices": "partial-punch",
    "kvm_gmem_shareability_get": "fault-past-eof-warn",
    **{site: "rollback-warn" for site in ROLLBACK_WARN_SITES},
    **{site: "tdx-bug" for site in TDX_BUG_SITES},
}


@dataclass(frozen=True)
class FiredFault:
    """A fault that fired during the step: point, kind label and the hit's context."""

    point: str
    kind: str
    phase: str | None
    persistent: bool  # its references outlive the arming's hit (extra_refcount, hold=none)


@dataclass
class Outcome:
    """What one operation of the machine did, as the checks need it."""

    operation: str  # "convert", "punch", "host", "guest", "fallocate", "pin", ...
    revision: Revision
    error: BaseException | None = None
    result: Any = None  # what the operation returned (a file, a pin)
    warnings: Sequence[Any] = ()  # the Warn records the operation added
    fired: Sequence[FiredFault] = ()
    violations: Sequence[str] = ()  # host.violations() after the operation
    #: the machine's own user-visible checks that failed: (tag, text); tags "error-offset",
    #: "unconverted", "shareability", "contents", "errno", "einval-changed"
    oracles: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    """One problem of a step: the defect it is a symptom of (None: unexplained) and why."""

    defect: str | None
    text: str

    def __str__(self) -> str:
        return f"[{self.defect or 'unexplained'}] {self.text}"


def _known(name: str | None, revision: Revision) -> str | None:
    """``name`` if the revision carries that defect, else None (a symptom the revision should
    not show is unexplained)."""
    return name if name is not None and DEFECTS[name].present_in(revision) else None


def classify(o: Outcome) -> list[Finding]:
    """Every problem of the step, each under the defect it is a symptom of. Symptoms that follow
    from a WARN of the same step (its invariant violations, a changed shareability) are put
    under that WARN's defect: the kernel said it failed."""
    rev = o.revision
    out: list[Finding] = []
    warn_defects: list[str | None] = []
    d: str | None
    for w in o.warnings:
        d = _known(WARN_DEFECTS.get(w.where), rev)
        warn_defects.append(d)
        out.append(Finding(d, f"WARN {w}"))
    cause = next((d for d in warn_defects if d not in (None, "tdx-bug")), None)
    if o.error is not None and type(o.error).__name__ == "KernelBug":
        fn = getattr(o.error, "function", "")
        out.append(Finding(_known(KERNEL_BUG_DEFECTS.get(fn), rev), f"KernelBug: {o.error}"))
    failed_conversion = o.operation == "convert" and isinstance(o.error, OSError) \
        and o.error.errno in (_errno.ENOMEM, _errno.EAGAIN)
    for v in o.violations:
        if v.startswith("[8 punch]"):
            d = _known("partial-punch", rev)
        elif cause is not None:
            d = cause
        elif failed_conversion and v.startswith(("[2 split]", "[7 rollback]")):
            d = _known("rollback-undoes-untouched", rev)
        else:
            d = None
        out.append(Finding(d, f"invariant: {v}"))
    for tag, text in o.oracles:
        if tag == "error-offset" and isinstance(o.error, OSError) and o.error.errno == _errno.ENOMEM:
            d = _known("garbage-error-offset", rev)
        elif tag == "unconverted" and any(f.point == "kvm_gmem_convert_compute_work" for f in o.fired):
            d = _known("shadowed-ret", rev)
        elif tag in ("shareability", "contents") and cause is not None:
            d = cause
        else:
            d = None
        out.append(Finding(d, f"{tag}: {text}"))
    return out


def tolerated(finding: Finding, o: Outcome, tolerate: Iterable[str]) -> bool:
    """Whether ``finding`` is a legitimate outcome of the step rather than a failure: a
    ``tdx-bug`` WARN after an injected SEAMCALL error, or a defect named in ``tolerate`` whose
    trigger the step really had (``rollback-warn``: a fault met the undo, see the module doc)."""
    allowed = set(tolerate)
    if finding.defect == "tdx-bug":
        return any(f.kind.startswith("tdx_error") for f in o.fired)
    if finding.defect not in allowed:
        return False
    if finding.defect == "rollback-warn":
        return any(f.phase == "rollback" or f.persistent for f in o.fired)
    return True


def breaks_state(o: Outcome, findings: Iterable[Finding]) -> bool:
    """Whether the host is past checking after a step whose findings did not fail the run
    (tolerated or, in target mode, ignored): a KernelBug (the model stopped mid-operation), a
    broken invariant, or a WARN that says the file is inconsistent (a failed undo, a partial
    punch). A WARN alone otherwise (past EOF, the spin's WARN_ONCE, a bugged TDX VM), a wrong
    error_offset or a swallowed error leave a state the checks still hold to."""
    if o.violations or type(o.error).__name__ == "KernelBug":
        return True
    return any(f.defect in ("rollback-warn", "partial-punch") for f in findings)


def default_tolerate(revision: Revision) -> frozenset[str]:
    """What a revision is documented to keep: ``fixed`` still only WARNs when a rollback fails
    (docs/model.md); no other revision keeps a defect it may show without failing."""
    return frozenset({"rollback-warn"}) if not revision.prealloc and not revision.rollback_underflow \
        else frozenset()


def fired_fault(point: str, kind: Any, context: Mapping[str, Any]) -> FiredFault:
    """A :class:`FiredFault` from the engine's ``Fired`` parts."""
    name = type(kind).__name__
    persistent = name == "ExtraRefcount" or (name == "SpeculativeRefcount" and getattr(kind, "hold", 0) is None)
    label = kind.label() if hasattr(kind, "label") else str(kind)
    phase = context.get("phase")
    return FiredFault(point, label, phase if isinstance(phase, str) else None, persistent)
