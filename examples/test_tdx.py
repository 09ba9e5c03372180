"""TDX VMs: the TDX module refusing to remove a private page from the S-EPT."""

import errno

import pytest

from pytest_gmem import ConversionError

TDX = pytest.mark.gmem(size="2M", page_size="2M", vm_type="tdx", init_private=True)


@TDX
@pytest.mark.tdx_unmap_failure(error="TDX_OPERAND_BUSY")
def test_busy_removal_is_retried(gmem, faults):
    gmem.guest_write(0, b"x")
    gmem.convert_shared(0, "4K")
    assert gmem.shareability(0) == "shared"
    assert [f.point for f in faults.fired] == ["tdh_mem_page_remove"]


@TDX
@pytest.mark.tdx_unmap_failure(error="fatal")
@pytest.mark.allow_warn("KVM_BUG_ON")
def test_fatal_removal_kills_the_td(gmem):
    gmem.guest_write(0, b"x")
    with pytest.raises(ConversionError) as info:
        gmem.convert_shared(0, "4K")
    assert info.value.errno == errno.EIO
