"""The conversion ioctls (mirrors ``kvm_gmem_ioctl_convert_range``, ``kvm_gmem_convert_range``
and their helpers in virt/kvm/guest_memfd.c, RFC v2 patches 04/51 and 38/51).

``rfc-v2`` and ``fixed`` roll back on failure and WARN when the rollback fails; ``prealloc``
does every check and allocation before the point of no return (in-place conversion v8 style,
keeping HugeTLB split/merge), after which nothing can fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import faults

from . import restructure
from .errors import EAGAIN, EINVAL, ENOMEM, ConversionError, ConvFailure
from .shareability import P_STORE, PRIVATE, SHARED
from .snapshot import capture, from_image
from .units import PAGE_SHIFT, PAGE_SIZE, U64_MASK

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd
    from .snapshot import Image

P_COMPUTE_WORK = faults.declare(
    "kvm_gmem_convert_compute_work", {"ENOMEM"},
    """kzalloc of a struct conversion_work in add_to_work_list(), one per sub-range whose
    shareability differs from the target; nothing has changed yet when it fails (rfc-v2
    swallows the failure and converts the sub-ranges computed before it).""",
    reached="a conversion (rfc-v2, fixed, prealloc) finds a sub-range whose shareability differs from the "
    "target: converting a range that is already shared to shared, or private to private, does not "
    "reach it; upstream builds no work list and never reaches it.",
)
P_SAFE_REFCOUNT = faults.declare(
    "kvm_gmem_has_safe_refcount", {"speculative_refcount", "extra_refcount"},
    """The refcount check of a to-private conversion (and of merge-truncate): a folio holding
    more than its filemap references (+1 for the lookup) makes it fail with EAGAIN, with
    error_offset at that folio.""",
    reached="a to-private conversion (or the merge of a punch hole) checks the refcounts of the allocated "
    "folios in its range: the range must hold allocated folios (something was written or "
    "fallocated there) and be converted to private.",
)

#: what userspace reads back in error_offset when the kernel never set error_index (rfc-v2)
UNINITIALISED_ERROR_INDEX = 0xFFFFC9000BADF00D


@dataclass
class Work:
    """``struct conversion_work``."""

    start: int
    nr_pages: int

    @property
    def end(self) -> int:
        return self.start + self.nr_pages


def ioctl_convert_range(g: GuestMemfd, offset: int, size: int, to_shared: bool, error_offset: int) -> None:
    """Mirrors ``kvm_gmem_ioctl_convert_range``: argument checks in the kernel's order, then the
    conversion. Raises ConversionError: EINVAL, EAGAIN, ENOMEM."""
    name = "KVM_GMEM_CONVERT_SHARED" if to_shared else "KVM_GMEM_CONVERT_PRIVATE"
    g.host.begin_op(f"{name}(offset={offset:#x}, size={size:#x})")
    if error_offset != 0:
        raise ConversionError(EINVAL, f"{name}: input error_offset must be 0", error_offset)
    if size == 0:
        return
    if offset < 0 or size < 0 or offset + size > U64_MASK or offset > g.size or offset + size > g.size:
        raise ConversionError(EINVAL, f"{name}: range {offset:#x}+{size:#x} is outside the file "
                                      f"(size {g.size:#x})", error_offset)
    if offset % PAGE_SIZE or size % PAGE_SIZE:
        raise ConversionError(EINVAL, f"{name}: offset {offset:#x} / size {size:#x} not 4K aligned",
                              error_offset)
    run_conversion(g, name, offset >> PAGE_SHIFT, size >> PAGE_SHIFT, to_shared)


def run_conversion(g: GuestMemfd, name: str, start: int, nr: int, to_shared: bool) -> None:
    """The conversion once the ioctl's arguments passed (both uAPIs): the revision's
    ``kvm_gmem_convert_range`` / ``__kvm_gmem_set_attributes``, the rollback check when on, and
    the errno and ``error_offset`` userspace sees (ConversionError)."""
    window = _rollback_window(g, start, nr) if g.host.check_rollback else None
    before = capture(g, window) if window is not None else None  # cheap: compared only on failure
    arch_before = g.vm.rollback_state(g, *window) if window is not None else None
    warned = len(g.host.warnings)
    try:
        if g.host.revision.prealloc:
            convert_range_prealloc(g, start, nr, to_shared)
        else:
            convert_range(g, start, nr, to_shared)
    except ConvFailure as e:
        if window is not None and before is not None and e.errno in (ENOMEM, EAGAIN) \
                and len(g.host.warnings) == warned:
            # rfc-v2 and fixed remove a to-shared range from the S-EPT in the pre-checks, which
            # clears it; prealloc removes nothing before its last failure point
            exact = g.vm.preserves_contents or not to_shared or g.host.revision.prealloc
            _check_rolled_back(g, name, e, before, window, contents=exact,
                               arch=(arch_before, g.vm.rollback_state(g, *window)) if exact else None)
        if e.error_index is None:
            if g.host.revision.error_offset_on_enomem:
                raise ConversionError(e.errno, f"{name}: {e.why}", start << PAGE_SHIFT) from None
            garbage = (UNINITIALISED_ERROR_INDEX << PAGE_SHIFT) & U64_MASK
            raise ConversionError(e.errno, f"{name}: {e.why} (error_offset is uninitialised stack)",
                                  garbage, error_offset_valid=False) from None
        raise ConversionError(e.errno, f"{name}: {e.why}", e.error_index << PAGE_SHIFT) from None


def _rollback_window(g: GuestMemfd, start: int, nr: int) -> tuple[int, int]:
    """The pages a conversion of ``[start, start + nr)`` may change: the range rounded out to
    the file's folio size (splits and merges), within the file."""
    n = g.nr_pages_in_folio
    return start - start % n, min(g.nr_pages, -(-(start + nr) // n) * n)


def _check_rolled_back(g: GuestMemfd, name: str, e: ConvFailure, before: Image,
                       window: tuple[int, int], contents: bool,
                       arch: tuple[object, object] | None = None) -> None:
    """``host.check_rollback``: a conversion that failed with ENOMEM or EAGAIN without a WARN
    (a WARN says the kernel knew its rollback failed) must leave the file as it found it, page
    tables aside; record what differs otherwise (a silent partial conversion). ``contents``
    False: a TDX removal before the point of no return cleared the pages, as the hardware does.
    ``arch``: the VM's own state before and after (TDX: accept state), compared too."""
    after = capture(g, window)
    if not contents:
        before, after = before._replace(contents=()), after._replace(contents=())
    diff = from_image(before).diff(from_image(after)) if before != after else []
    if arch is not None and arch[0] != arch[1]:
        diff.append(f"arch state (TDX: pending pages) {arch[0]!r} -> {arch[1]!r}")
    if diff:
        g.host.rollback_failures.append(
            f"{name} on gmem#{g.host.files.index(g) if g in g.host.files else '?'} failed with "
            f"{_ename(e.errno)} ({e.why}) but changed the file: " + "; ".join(diff[:6]))


def compute_work(g: GuestMemfd, start: int, nr: int, target: str) -> list[Work]:
    """Mirrors ``kvm_gmem_convert_compute_work``: one item per sub-range not already in
    ``target``; ENOMEM (error_index unset) when an item's kzalloc fails. rfc-v2 (defect 5): the
    loop's own ``int ret`` shadows the returned one, so the failure is swallowed and the items
    allocated before it are returned as the whole work (the ioctl then reports success)."""
    items = [Work(s, e - s) for s, e, v in g.share.ranges(start, start + nr) if v != target]
    if g.host.revision.abi == "upstream":  # kvm_gmem_range_has_attributes(): no list, no kzalloc
        return items
    if items and (f := P_COMPUTE_WORK.hit_many(len(items), index=start, phase="forward")) is not None:
        g.host.note_fault(f)
        if g.host.revision.compute_work_ret_shadowed:
            return items[:f.offset]
        raise ConvFailure(ENOMEM, None, "kvm_gmem_convert_compute_work: kzalloc failed")
    return items


def shareability_apply(g: GuestMemfd, work: Work, value: str, phase: str) -> None:
    """Mirrors ``kvm_gmem_shareability_apply`` -> ``kvm_gmem_shareability_store`` (ENOMEM)."""
    f = P_STORE.hit(index=work.start, nr_pages=work.nr_pages, phase=phase)
    if f is not None:
        g.host.note_fault(f)
        raise ConvFailure(ENOMEM, None, "kvm_gmem_shareability_store: maple tree allocation failed")
    g.share.store(work.start, work.end, value)
    g.vm.converted(g, work.start, work.end, value == SHARED)


def has_safe_refcount(g: GuestMemfd, start: int, nr: int, clamp: bool, drain: bool) -> int | None:
    """Mirrors ``kvm_gmem_has_safe_refcount`` (v8: ``kvm_gmem_is_safe_for_conversion``): returns
    the error index of the first folio with unexpected references, or None when all are safe.
    ``clamp``: v8 reports max(start, folio index); ``drain``: v8 drains LRU batches once."""
    drained = False
    for run in list(g.filemap.runs(start, start + nr)):
        count = (run.end - run.start) // run.folio_nr
        f = P_SAFE_REFCOUNT.hit_many(count, index=run.start, phase="check",
                                     folio_order=run.folio_nr.bit_length() - 1)
        if f is not None:
            g.host.note_fault(f)
            restructure.attach_refs(g, run.block, run.start + f.offset * run.folio_nr, f)
        bad = run.block.first_extra(run.start, run.end, run.folio_nr)
        if bad is not None and drain and not drained:
            drained = True  # lru_add_drain_all() once per request
            run.block.spin_tick(run.start, run.end)
            bad = run.block.first_extra(run.start, run.end, run.folio_nr)
        if bad is not None:
            return max(start, bad) if clamp else bad
    return None


def should_proceed(g: GuestMemfd, work: Work, to_shared: bool) -> None:
    """Mirrors ``kvm_gmem_convert_should_proceed``: to shared, zap the guest's private
    mappings; to private, unmap every host mapping, then the refcount check (EAGAIN). The
    arch pre-check (``vm.prepare_convert``: TDX S-EPT demote/removal) comes first."""
    g.vm.prepare_convert(g, work.start, work.end, to_shared)
    if to_shared:
        g.vm.unmap_private(g, work.start, work.end)
        return
    unmap_mapping_pages(g, work.start, work.end)
    bad = has_safe_refcount(g, work.start, work.nr_pages, clamp=False, drain=False)
    if bad is not None:
        raise ConvFailure(EAGAIN, bad, f"folio at index {bad:#x} has unexpected references")


def unmap_mapping_pages(g: GuestMemfd, start: int, end: int) -> None:
    """``unmap_mapping_pages``: zap host PTEs in every process; the MMU notifier zaps the
    guest's shared mappings of the range."""
    for m in g.mappings:
        m.ptes.clear(start, end)
    g.vm.unmap_shared(g, start, end)


def execute_work(g: GuestMemfd, work: Work, to_shared: bool, phase: str) -> None:
    """Mirrors ``kvm_gmem_convert_execute_work``: store the shareability, then split (to shared)
    or try to merge (to private) the folios of the range rounded out to huge pages."""
    shareability_apply(g, work, SHARED if to_shared else PRIVATE, phase)
    restructure.restructure_folios_in_range(g, work.start, work.nr_pages, to_shared, phase)


def convert_range(g: GuestMemfd, start: int, nr: int, to_shared: bool) -> None:
    """Mirrors ``kvm_gmem_convert_range`` (rfc-v2, fixed): work list, invalidation, pre-checks,
    execute, roll back on failure (WARN when the rollback fails)."""
    if not g.supports_shared:
        return  # no shareability tree: the work list is empty
    g.vm.check_convert(g, start, start + nr, to_shared)
    target = SHARED if to_shared else PRIVATE
    work = compute_work(g, start, nr, target)
    if not work:
        return
    for w in work:
        should_proceed(g, w, to_shared)
    stop: Work | None = None
    failure: ConvFailure | None = None
    for w in work:
        stop = w
        try:
            execute_work(g, w, to_shared, "forward")
        except ConvFailure as e:
            failure = e
            break
    if failure is None:
        return
    for w in work:
        try:
            execute_work(g, w, not to_shared, "rollback")
        except ConvFailure as e:
            g.host.warn("kvm_gmem_convert_range",
                        f"WARN_ON(kvm_gmem_convert_execute_work(rollback)) = -{_ename(e.errno)} "
                        f"on [{w.start:#x}, {w.end:#x}): {e.why}")
        if w is stop:
            break
    raise failure


def convert_range_prealloc(g: GuestMemfd, start: int, nr: int, to_shared: bool) -> None:
    """The ``prealloc`` revision (v8 ``__kvm_gmem_set_attributes`` order, with HugeTLB kept):
    compute the work, preallocate maple-tree nodes (ENOMEM), check refcounts (EAGAIN, one LRU
    drain, error index clamped), prepare every split and merge (stash, vmemmap, filemap
    slots: ENOMEM), remove private pages from the arch's page tables (TDX: EIO on a fatal
    error); then past the point of no return apply everything, which cannot fail."""
    if not g.supports_shared:
        return
    g.vm.check_convert(g, start, start + nr, to_shared)
    target = SHARED if to_shared else PRIVATE
    work = compute_work(g, start, nr, target)
    if not work:
        return
    f = P_STORE.hit(index=start, nr_pages=nr, phase="prepare",
                    nodes=g.share.nodes_needed(start, start + nr))
    if f is not None:  # kvm_gmem_mas_preallocate(): the store's nodes are allocated up front
        g.host.note_fault(f)
        raise ConvFailure(ENOMEM, None, "kvm_gmem_mas_preallocate: maple tree preallocation failed")
    for w in work:  # arch checks that change nothing (TDX: S-EPT demote, held folios)
        g.vm.precheck_convert(g, w.start, w.end, to_shared)
    if not to_shared:
        for w in work:
            unmap_mapping_pages(g, w.start, w.end)
        for w in work:
            bad = has_safe_refcount(g, w.start, w.nr_pages, clamp=True, drain=True)
            if bad is not None:
                raise ConvFailure(EAGAIN, bad, f"folio at index {bad:#x} has unexpected references")
    plan = restructure.prepare_restructure(g, work, to_shared)
    if to_shared:  # the last step that can fail (TDX: a fatal S-EPT removal, EIO), after every
        try:       # allocation: a failed conversion never cleared the guest's private pages
            for w in work:
                g.vm.remove_for_convert(g, w.start, w.end)
        except ConvFailure:
            restructure.cancel_restructure(g, plan)
            raise
    # --- point of no return ---
    for w in work:
        if to_shared:
            g.vm.unmap_private(g, w.start, w.end)
        g.share.store(w.start, w.end, target)
        g.vm.converted(g, w.start, w.end, to_shared)
    restructure.apply_restructure(g, plan)


def _ename(code: int) -> str:
    import errno as _errno

    return _errno.errorcode.get(code, str(code))
