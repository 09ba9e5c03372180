"""File, inode and subpool lifetime (Linux semantics the review of the model checked):

* a host mapping holds the file (``vma->vm_file``): ``close(fd)`` releases nothing while a
  mapping exists; the guest keeps its mappings and its memslot binding;
* the last reference runs ``kvm_gmem_release`` (guest zapped, binding gone), then eviction;
* long-term pins hold folios, not the file: a pinned page outlives the inode;
* ``hugepage_put_subpool`` gives the reservations back only once no page is in use
  (``subpool_is_free``); until then freed pages keep restoring reservations.
"""

from __future__ import annotations

import errno

import pytest

import faults
from pytest_gmem import ConversionError, GuestFault, Host

M = 1 << 20


def test_close_with_a_mapping_keeps_the_guest_binding() -> None:
    host = Host(hugetlb={"2M": 4})
    g = host.create_vm().create_guest_memfd(size="2M", mmap=True, init_private=True, page_size="2M")
    m = g.mmap()
    g.guest_write(0, b"secret")
    assert g.guest_mapping_level(0) == "2M"
    g.close()
    assert g.guest_mapping_level(0) == "2M", "close(fd) zapped the guest while a mapping holds the file"
    assert g.guest_read(0, 6) == b"secret"
    with pytest.raises(OSError) as e:
        g.convert_shared(0, 4096)
    assert e.value.errno == errno.EBADF
    host.check()
    m.munmap()  # the last reference: kvm_gmem_release, then eviction
    assert g.guest_mapping_level(0) is None
    with pytest.raises(GuestFault):
        g.guest_read(0, 6)
    assert not g.alive
    host.flush_work()
    assert host.hugetlb_stats("2M") == {"total": 4, "free": 4, "resv": 0}
    assert host.violations() == []


def test_munmap_before_close_releases_at_close() -> None:
    host = Host(hugetlb={"2M": 4})
    g = host.create_vm().create_guest_memfd(size="2M", mmap=True, init_private=True, page_size="2M")
    g.mmap().munmap()
    g.guest_write(0, b"x")
    assert g.alive
    g.close()
    assert not g.alive and g.guest_mapping_level(0) is None
    assert host.hugetlb_stats("2M") == {"total": 4, "free": 4, "resv": 0}


def test_a_pin_does_not_keep_the_inode() -> None:
    """Ports the point of v2 test_close_with_pinning: close first, unpin afterwards. The
    unpinned huge pages return at eviction; the pinned one (and the subpool's reservations for
    the returned pages) only when the pin goes."""
    host = Host(hugetlb={"2M": 8})
    g = host.create_vm().create_guest_memfd(size="8M", mmap=True, page_size="2M")
    m = g.mmap()
    m.fill(0, 8 * M, 0x41)
    pin = m.pin(0, 4096)
    assert host.hugetlb_stats("2M") == {"total": 8, "free": 4, "resv": 0}
    m.munmap()
    g.close()
    host.flush_work()
    assert not g.alive, "a long-term pin kept the inode alive"
    # 3 pages back in the pool, each restoring its reservation: the subpool still has a page in use
    assert host.hugetlb_stats("2M") == {"total": 8, "free": 7, "resv": 3}
    assert host.violations() == []
    pin.unpin()
    host.flush_work()  # the pinned piece was the last one of its split page: merged, freed
    assert host.hugetlb_stats("2M") == {"total": 8, "free": 8, "resv": 0}
    assert host.violations() == []


def test_a_leaked_page_keeps_the_subpool_and_its_reservations() -> None:
    """TDX ``leak`` policy: a page the TDX module still holds never returns; the subpool is not
    free, so the reservation restored for the other page is not given back either."""
    host = Host(hugetlb={"2M": 8})
    vm = host.create_vm(vm_type="tdx", tdx_fatal_policy="leak")
    g = vm.create_guest_memfd(size="4M", mmap=True, init_private=True, page_size="2M")
    g.guest_write(0, b"x" * 4096)
    g.guest_write(2 * M, b"y" * 4096)
    with faults.inject("tdh_mem_page_remove", faults.tdx_error("fatal")), pytest.raises(ConversionError):
        g.convert_shared(0, 4096)
    g.close()
    host.flush_work()
    assert host.hugetlb_stats("2M") == {"total": 8, "free": 7, "resv": 1}


def test_the_checker_catches_a_leaked_reservation() -> None:
    """Invariant 4: ``resv`` is the starting value plus what the live subpools still hold."""
    host = Host(hugetlb={"2M": 8})
    g = host.create_vm().create_guest_memfd(size="4M", mmap=True, init_private=True, page_size="2M")
    g.guest_write(0, b"x")
    assert host.violations() == []
    host.pools["2M"].resv += 1  # what a reservation leak would leave
    assert any("[4 hugetlb]" in v and "live subpools" in v for v in host.violations())
