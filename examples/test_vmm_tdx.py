"""A downstream VMM's conversion policy, tested under every TDX and ENOMEM fault.

This is how a VMM developer would use pytest-gmem: their policy object plugs into the
reference loop ``pytest_gmem.vmm.convert`` (or their own loop), the plugin builds a TDX guest
and arms the faults, and every test checks that the guest is never told a failed conversion
succeeded. The plugin checks the host's invariants after each test.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

import pytest

import faults as fault_kinds
from pytest_gmem.model.tdx import UnacceptedAccess
from pytest_gmem.vmm import GuestNotice, convert

MB = 1 << 20


@dataclass
class MyVmmPolicy:
    """A VMM's policy: it owns the IOMMU pins of its passthrough device and unmaps them on
    EAGAIN; on ENOMEM it shrinks its own caches once; it queues a MapGPA error for the guest."""

    max_eagain_retries: int = 2
    max_enomem_retries: int = 1
    iommu_pins: list = field(default_factory=list)
    guest_errors: list = field(default_factory=list)

    def drop_references(self, gmem, error_offset):
        mine = [p for p in self.iommu_pins if p.live]
        for p in mine:
            p.unpin()
        self.iommu_pins.clear()
        return bool(mine)

    def free_memory(self, gmem):
        gmem.host.flush_work()
        return True

    def notify_guest_failure(self, gmem, notice: GuestNotice):
        self.guest_errors.append(notice)


def guest_sees_what_happened(gmem, policy, result, want):
    """The guest's view matches the kernel's: success only if every page has the new state."""
    if result.ok:
        assert not policy.guest_errors
        assert all(gmem.shareability(o) == want for o in range(result.offset, result.offset + result.size, 4096))
    else:
        assert policy.guest_errors and policy.guest_errors[-1].errno == result.errno


@pytest.fixture
def tdx_guest(gmem):
    """A TD that touched every 1M of its (init-private, 2M HugeTLB) memory."""
    for off in range(0, 4 * MB, MB):
        gmem.guest_write(off, b"guest")
    return gmem


MARK_TDX = pytest.mark.gmem(size="4M", page_size="2M", vm_type="tdx", init_private=True)


@MARK_TDX
def test_guest_asks_for_shared_memory(tdx_guest):
    policy = MyVmmPolicy()
    result = convert(tdx_guest, MB, "8K", to_shared=True, policy=policy)
    assert result.ok
    assert tdx_guest.mmap().read(MB, 5) == bytes(5)  # a TD's private contents never leak out
    assert tdx_guest.guest_read(0, 5) == b"guest"  # the rest of the huge page is untouched


@MARK_TDX
@pytest.mark.tdx_unmap_failure(error="TDX_OPERAND_BUSY")
def test_busy_is_invisible_to_the_vmm(tdx_guest, faults):
    result = convert(tdx_guest, MB, "8K", to_shared=True, policy=MyVmmPolicy())
    assert result.ok and len(result.attempts) == 1  # KVM retried it
    assert [f.kind.label() for f in faults.fired] == ["tdx_error(TDX_OPERAND_BUSY)"]


@MARK_TDX
@pytest.mark.tdx_unmap_failure(error="TDX_OPERAND_BUSY", times=None)
@pytest.mark.allow_warn(r"KVM_BUG_ON")
def test_busy_forever_kills_the_td(tdx_guest, gmem_vm):
    policy = MyVmmPolicy()
    result = convert(tdx_guest, MB, "8K", to_shared=True, policy=policy)
    assert not result.ok and result.errno == errno.EIO
    assert gmem_vm.dead
    guest_sees_what_happened(tdx_guest, policy, result, "shared")


@MARK_TDX
@pytest.mark.tdx_unmap_failure(error="fatal", nth=2)
@pytest.mark.allow_warn(r"KVM_BUG_ON")
def test_fatal_removal_is_reported_not_retried(tdx_guest):
    policy = MyVmmPolicy()
    result = convert(tdx_guest, MB, "8K", to_shared=True, policy=policy)
    assert [a.action for a in result.attempts] == ["give_up"]
    guest_sees_what_happened(tdx_guest, policy, result, "shared")


@pytest.mark.allow_warn(r"KVM_BUG_ON")
def test_fatal_removal_under_the_leak_policy(gmem_host, faults):
    vm = gmem_host.create_vm(vm_type="tdx", tdx_fatal_policy="leak")
    gmem = vm.create_guest_memfd(size="4M", mmap=True, init_private=True, page_size="2M")
    gmem.guest_write(MB, b"x")
    policy = MyVmmPolicy()
    faults.inject("tdh_mem_page_remove", fault_kinds.tdx_error("fatal"), when={"level": "4K"})
    result = convert(gmem, MB, "8K", to_shared=True, policy=policy)
    assert result.errno == errno.EFAULT  # the page TDX holds can never be converted
    assert vm.leaked_pages() == 512  # the whole 2M folio, held forever
    guest_sees_what_happened(gmem, policy, result, "shared")


@MARK_TDX
@pytest.mark.fault("tdh_mem_page_demote=tdx_error(fatal)")
@pytest.mark.allow_warn(r"KVM_BUG_ON")
def test_demote_failure(tdx_guest):
    policy = MyVmmPolicy()
    result = convert(tdx_guest, MB, "8K", to_shared=True, policy=policy)
    assert result.errno == errno.EIO and tdx_guest.ranges() == [(0, 4 * MB, "private")]
    guest_sees_what_happened(tdx_guest, policy, result, "shared")


@pytest.mark.gmem(size="4M", page_size="2M", vm_type="tdx", init_private=False)
def test_guest_takes_memory_back_from_a_device(gmem):
    m = gmem.mmap()
    m.write(MB, b"dma buffer")
    policy = MyVmmPolicy()
    policy.iommu_pins.append(m.pin(MB, "4K"))
    result = convert(gmem, MB, "2M", to_shared=False, policy=policy)
    assert [a.action for a in result.attempts] == ["drop_references", "done"]
    with pytest.raises(UnacceptedAccess):  # a TD must accept memory that became private
        gmem.guest_read(MB, 1)
    gmem.guest_accept(MB, 2 * MB)
    assert gmem.guest_read(MB, 10) == bytes(10)


def share_one_page(gmem, policy):
    """The scenario swept below: the TD (which touched its memory) asks for 8K to be shared."""
    return convert(gmem, MB, "8K", to_shared=True, policy=policy)


def every_fault():
    """(point, kind, nth) for every fault point the scenario reaches, found by a dry run."""
    from pytest_gmem import Host

    host = Host(hugetlb={"2M": 4}, revision="prealloc")
    gmem = host.create_vm(vm_type="tdx").create_guest_memfd(size="4M", mmap=True, init_private=True,
                                                           page_size="2M")
    gmem.guest_write(MB, b"x")
    with fault_kinds.scope(record=True) as dry:
        share_one_page(gmem, MyVmmPolicy())
    cases = []
    for point in fault_kinds.catalog():
        hits = dry.census.get(point.name, 0)
        kinds = [k for k in ("ENOMEM", "TDX_OPERAND_BUSY", "fatal")
                 if (k == "ENOMEM") == ("ENOMEM" in point.kinds) and (k == "ENOMEM" or "tdx_error" in point.kinds)]
        for kind in kinds:
            for nth in sorted({1, 2, hits} - {0}):
                if nth <= hits:
                    cases.append(pytest.param(point.name, kind, nth, id=f"{point.name}-{kind}-{nth}"))
    return cases


@pytest.mark.gmem(size="4M", page_size="2M", vm_type="tdx", init_private=True, revision="prealloc")
@pytest.mark.allow_warn(r"KVM_BUG_ON")
@pytest.mark.parametrize("point, kind, nth", every_fault())
def test_policy_under_every_tdx_and_enomem_fault(gmem, faults, point, kind, nth):
    """One item per reachable (point, kind, nth): the VMM either converts or tells the guest."""
    gmem.guest_write(MB, b"x")
    faults.inject(point, "ENOMEM" if kind == "ENOMEM" else fault_kinds.tdx_error(kind), nth=nth,
                  times=None if kind == "ENOMEM" else 1)
    policy = MyVmmPolicy()
    result = share_one_page(gmem, policy)
    assert faults.fired, "the fault was not reached"
    guest_sees_what_happened(gmem, policy, result, "shared")
