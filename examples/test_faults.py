"""Fault injection from markers and from the test body."""

import errno

import pytest

from pytest_gmem import ConversionError


@pytest.mark.gmem(size="4M", page_size="2M")
@pytest.mark.enomem("kvm_gmem_convert_compute_work")
def test_enomem_leaves_nothing_changed(gmem):
    before = gmem.snapshot()
    with pytest.raises(ConversionError) as info:
        gmem.convert_private(0, "4M")
    assert info.value.errno == errno.ENOMEM
    assert gmem.snapshot() == before


@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.enomem("guestmem_hugetlb_stash_metadata")
def test_split_fails_and_rolls_back(gmem):
    gmem.guest_write(0, b"private data")  # faults in a 2M folio: converting 4K of it splits it
    with pytest.raises(ConversionError) as info:
        gmem.convert_shared(0, "4K")
    assert info.value.errno == errno.ENOMEM
    assert gmem.ranges() == [(0, 4 << 20, "private")]
    assert gmem.guest_read(0, 12) == b"private data"


@pytest.mark.gmem(size="2M", page_size="2M")
@pytest.mark.speculative_refcount("kvm_gmem_has_safe_refcount", refs=1, hold=None)
def test_speculative_reference_gives_eagain(gmem):
    gmem.guest_write(0, b"x")
    with pytest.raises(ConversionError) as info:
        gmem.convert_private(0, "2M")
    assert info.value.errno == errno.EAGAIN


@pytest.mark.gmem(size="4M", page_size="2M")
@pytest.mark.fault("kvm_gmem_convert_compute_work=1*off->1*enomem")
def test_second_conversion_fails(gmem):
    gmem.convert_private(0, "2M")
    with pytest.raises(ConversionError):
        gmem.convert_private(2 << 20, "2M")
    gmem.convert_private(2 << 20, "2M")


@pytest.mark.gmem(size="4M", page_size="2M", init_private=True, revision="rfc-v2")
@pytest.mark.fault("kvm_gmem_shareability_store=enomem@times=inf")
@pytest.mark.allow_warn(r"WARN_ON\(kvm_gmem_convert_execute_work\(rollback\)\)")
def test_rfc_v2_only_warns_when_rollback_fails(gmem, gmem_host):
    with pytest.raises(ConversionError):
        gmem.convert_shared(0, "4M")
    assert any("rollback" in w.message for w in gmem_host.warnings)


@pytest.mark.gmem(size="4M", page_size="2M", init_private=True, revision="prealloc")
@pytest.mark.fault("kvm_gmem_shareability_store=enomem@times=inf")
def test_prealloc_fails_before_the_point_of_no_return(gmem, gmem_host):
    with pytest.raises(ConversionError):
        gmem.convert_shared(0, "4M")
    assert gmem_host.warnings == []


def test_arm_in_the_body(gmem, faults):
    gmem.convert_private(0, "2M")
    with faults.inject("kvm_gmem_convert_compute_work", "ENOMEM"):
        with pytest.raises(ConversionError):
            gmem.convert_shared(0, "2M")
    gmem.convert_shared(0, "2M")  # disarmed when the block ended
    assert [f.point for f in faults.fired] == ["kvm_gmem_convert_compute_work"]
