"""The reference VMM loop (``pytest_gmem.vmm``): retries, give-ups, and a sweep over every fault
point a conversion reaches, checking that the guest never believes a failed conversion
succeeded and that the host's invariants hold."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import faults
from pytest_gmem import Host, SigBus
from pytest_gmem.model.tdx import UnacceptedAccess
from pytest_gmem.vmm import DefaultPolicy, Result, convert

MB = 1 << 20
K4 = 4096


@dataclass
class Scenario:
    host: Any
    vm: Any
    gmem: Any
    mapping: Any
    policy: DefaultPolicy
    offset: int
    size: int
    to_shared: bool


def build(revision: str, fatal_policy: str, to_shared: bool) -> Scenario:
    """A 4M TDX file of 2M pages, with the rollback check on (a conversion failing with ENOMEM
    or EAGAIN without a WARN must leave the file and the accept state as they were). To
    shared: the guest touched every 1M (huge S-EPT entries); ``[4K, 2M + 8K)`` straddles both
    huge pages, so both are demoted. To private: the host wrote every 1M, the page at 2M + 4K
    is private already and the VMM holds a pin it owns on the page at 1M; ``[0, 2M + 8K)`` is
    two work items, and the first huge page merges once it is all private."""
    host = Host(hugetlb={"2M": 8}, revision=revision, check_rollback=True)
    vm = host.create_vm(vm_type="tdx", tdx_fatal_policy=fatal_policy)
    g = vm.create_guest_memfd(size="4M", mmap=True, init_private=to_shared, page_size="2M")
    m = g.mmap()
    policy = DefaultPolicy(max_eagain_retries=2, max_enomem_retries=2)
    for off in range(0, 4 * MB, MB):
        if to_shared:
            g.guest_write(off, b"guest")
        else:
            m.write(off, b"host")
    if to_shared:
        return Scenario(host, vm, g, m, policy, K4, 2 * MB + 2 * K4, to_shared)
    g.convert_private(2 * MB + K4, K4)
    policy.own(m.pin(MB, K4))
    return Scenario(host, vm, g, m, policy, 0, 2 * MB + 2 * K4, to_shared)


def run(sc: Scenario) -> Result:
    return convert(sc.gmem, sc.offset, sc.size, sc.to_shared, sc.policy)


def rollback_warnings(sc: Scenario) -> list[Any]:
    """WARNs of the known rfc-v2/fixed defect (ENOMEM while rolling back): after one, the
    kernel's state is knowingly inconsistent (e.g. a folio lost from the filemap)."""
    return [w for w in sc.host.warnings if not w.where.startswith("tdx_")]


def check_guest_view(sc: Scenario, result: Result) -> None:
    """The guest believes the conversion succeeded only if it did; the host stays consistent
    (unless the kernel WARNed in a rollback, the known defect the prealloc revision fixes)."""
    g = sc.gmem
    want = "shared" if sc.to_shared else "private"
    broken = bool(rollback_warnings(sc))
    if result.ok:
        assert not sc.policy.guest_notices
        for off in range(sc.offset, sc.offset + sc.size, K4):
            assert g.shareability(off) == want, f"reported success but {off:#x} is not {want}"
        if broken:
            return
        if sc.to_shared:
            assert sc.mapping.read(sc.offset, 4) == bytes(4)  # host can use it; TDX cleared it
        else:
            with pytest.raises(SigBus):
                sc.mapping.read(sc.offset, 1)
            g.guest_accept(sc.offset, sc.size)
            g.guest_write(sc.offset, b"ok")
    else:
        assert result.guest_notified and len(sc.policy.guest_notices) == 1
        notice = sc.policy.guest_notices[0]
        assert (notice.offset, notice.size, notice.to_shared) == (sc.offset, sc.size, sc.to_shared)
        assert result.errno != 0 and result.attempts[-1].action == "give_up"
    if not broken:
        sc.host.check()


# --- the loop's decisions ---------------------------------------------------------------------
def test_eagain_drops_owned_pin_and_retries() -> None:
    sc = build("fixed", "bug-vm", to_shared=False)
    result = run(sc)
    assert result.ok
    assert [a.action for a in result.attempts] == ["drop_references", "done"]
    assert result.attempts[0].errno == errno.EAGAIN
    assert result.attempts[0].error_offset == MB  # the (4K, split) folio holding the pin
    assert len(sc.policy.dropped) == 1 and not sc.policy.pins
    check_guest_view(sc, result)


def test_eagain_from_a_reference_the_vmm_does_not_own_gives_up() -> None:
    sc = build("fixed", "bug-vm", to_shared=False)
    stray = sc.mapping.pin(3 * MB, K4)  # e.g. another process's IOMMU mapping
    sc.size = 4 * MB - sc.offset
    result = run(sc)
    assert not result.ok and result.errno == errno.EAGAIN
    assert [a.action for a in result.attempts] == ["drop_references", "drop_references", "give_up"]
    check_guest_view(sc, result)
    stray.unpin()


def test_enomem_retried_a_bounded_number_of_times() -> None:
    sc = build("prealloc", "bug-vm", to_shared=True)
    with faults.inject("kvm_gmem_shareability_store", "ENOMEM", times=None):
        result = run(sc)
    assert not result.ok and result.errno == errno.ENOMEM
    assert [a.action for a in result.attempts] == ["free_memory", "free_memory", "give_up"]
    assert "retries exhausted" in result.attempts[-1].detail
    check_guest_view(sc, result)


def test_enomem_once_then_success() -> None:
    sc = build("fixed", "bug-vm", to_shared=True)
    with faults.inject("kvm_gmem_shareability_store", "ENOMEM", nth=1):
        result = run(sc)
    assert result.ok and [a.action for a in result.attempts] == ["free_memory", "done"]
    check_guest_view(sc, result)


@pytest.mark.parametrize("policy, code", [("bug-vm", errno.EIO), ("leak", errno.EFAULT)])
def test_fatal_tdx_error_is_not_retried(policy: str, code: int) -> None:
    sc = build("fixed", policy, to_shared=True)
    with faults.inject("tdh_mem_page_remove", faults.tdx_error("fatal")):
        result = run(sc)
    assert not result.ok and result.errno == code
    assert len(result.attempts) == 1 and "not retryable" in result.attempts[0].detail
    assert "give_up" in result.log()
    check_guest_view(sc, result)


def test_einval_is_not_retried() -> None:
    sc = build("fixed", "bug-vm", to_shared=True)
    sc.offset = 1
    result = run(sc)
    assert not result.ok and result.errno == errno.EINVAL and len(result.attempts) == 1
    check_guest_view(sc, result)


def test_guest_must_re_accept_after_a_failed_to_shared() -> None:
    """Pages already removed from the S-EPT stay removed when a later step fails (unmapping
    is never undone): the guest, told the conversion failed, must accept them again."""
    sc = build("fixed", "bug-vm", to_shared=True)
    with faults.inject("kvm_gmem_shareability_store", "ENOMEM", times=None):
        result = run(sc)
    assert not result.ok
    with pytest.raises(UnacceptedAccess):
        sc.gmem.guest_read(sc.offset, 1)
    sc.gmem.guest_accept(sc.offset, sc.size)
    assert sc.gmem.guest_read(sc.offset, 5) == bytes(5)
    assert sc.gmem.guest_read(MB, 5) == bytes(5)  # inside the range: removed and cleared
    assert sc.gmem.guest_read(0, 5) == b"guest"  # outside it: demoted, still accepted
    assert sc.gmem.guest_read(3 * MB, 5) == b"guest"
    sc.host.check()


# --- the sweep -------------------------------------------------------------------------------
def kinds_for(point: faults.PointInfo) -> Iterator[tuple[str, faults.Kind, int | None]]:
    """The kinds a point can produce, as (label, kind, times)."""
    if "ENOMEM" in point.kinds:
        yield "ENOMEM", faults.enomem(), 1
        yield "ENOMEM-always", faults.enomem(), None
    if "tdx_error" in point.kinds:
        yield "BUSY", faults.tdx_error("TDX_OPERAND_BUSY"), 1
        yield "BUSY-always", faults.tdx_error("TDX_OPERAND_BUSY"), None
        yield "fatal", faults.tdx_error("fatal"), 1
    if "extra_refcount" in point.kinds:
        yield "extra_refcount", faults.extra_refcount(), 1
    if "speculative_refcount" in point.kinds:
        yield "speculative", faults.speculative_refcount(hold=3), 1


MAX_NTH = 6
SWEEP_SIZES: dict[str, int] = {}


@pytest.mark.parametrize("to_shared", [True, False], ids=["to_shared", "to_private"])
@pytest.mark.parametrize("fatal_policy", ["bug-vm", "leak"])
@pytest.mark.parametrize("revision", ["fixed", "prealloc"])
def test_sweep_never_leaves_the_guest_believing_a_failed_conversion_succeeded(
        revision: str, fatal_policy: str, to_shared: bool) -> None:
    with faults.scope(record=True) as census:
        baseline = run(build(revision, fatal_policy, to_shared))
    assert baseline.ok
    reached = {name: n for name, n in census.census.items() if n}
    catalog = [p for p in faults.catalog() if p.name in reached]
    assert catalog, "the conversion reached no fault point"
    if to_shared:
        assert {"tdp_mmu_alloc_sp_for_split", "tdh_mem_page_demote", "tdh_mem_page_remove"} <= reached.keys()
    runs = failed = defects = 0
    outcomes: dict[int, int] = {}
    for point in catalog:
        for label, kind, times in kinds_for(point):
            last = reached[point.name]
            for nth in sorted({*range(1, min(last, MAX_NTH) + 1), last // 2 or 1, last}):
                sc = build(revision, fatal_policy, to_shared)
                with faults.scope() as s:
                    faults.inject(point.name, kind, nth=nth, times=times)
                    result = run(sc)
                    fired = bool(s.fired)
                try:
                    check_guest_view(sc, result)
                except AssertionError as e:  # pragma: no cover - the failure message
                    raise AssertionError(f"{point.name} {label} nth={nth}: {e}\n{result.log()}") from e
                runs += 1
                defects += bool(rollback_warnings(sc))
                failed += not result.ok
                outcomes[result.errno] = outcomes.get(result.errno, 0) + 1
                assert fired or result.ok
    SWEEP_SIZES[f"{revision}/{fatal_policy}/{'shared' if to_shared else 'private'}"] = runs
    assert runs >= 20 and failed > 0 and outcomes.get(0, 0) > 0
    if revision == "prealloc":
        assert defects == 0  # nothing can fail after the point of no return
    print(f"sweep {revision}/{fatal_policy}/{'to_shared' if to_shared else 'to_private'}: {runs} runs, "
          f"{failed} failed and reported to the guest, {defects} after a rollback WARN, "
          f"errnos {sorted(outcomes.items())}")
