"""``@pytest.mark.tdx_unmap_failure`` end to end, through the plugin (pytester)."""

from __future__ import annotations

import pytest

SUITE = '''
import errno
import pytest
from pytest_gmem import ConversionError

TDX = pytest.mark.gmem(size="4M", page_size="2M", vm_type="tdx", init_private=True)

@TDX
@pytest.mark.tdx_unmap_failure()
def test_busy_default(gmem, gmem_vm, faults):
    gmem.guest_write(0, b"x")
    gmem.convert_shared(0, "2M")
    assert not gmem_vm.dead
    assert [f.point for f in faults.fired] == ["tdh_mem_page_remove"]

@TDX
@pytest.mark.tdx_unmap_failure(error="fatal", nth=1)
@pytest.mark.allow_warn("KVM_BUG_ON")
def test_fatal(gmem, gmem_vm):
    gmem.guest_write(0, b"x")
    with pytest.raises(ConversionError) as info:
        gmem.convert_shared(0, "2M")
    assert info.value.errno == errno.EIO and gmem_vm.dead

@TDX
@pytest.mark.tdx_unmap_failure(error="fatal")
def test_fatal_without_allow_warn_fails_the_after_test_check(gmem):
    gmem.guest_write(0, b"x")
    with pytest.raises(ConversionError):
        gmem.convert_shared(0, "2M")

@TDX
@pytest.mark.tdx_unmap_failure(point="tdh_mem_page_demote", error="TDX_OPERAND_BUSY", times=None)
@pytest.mark.allow_warn("KVM_BUG_ON")
def test_demote_busy_forever(gmem, gmem_vm):
    gmem.guest_write(0, b"x")
    with pytest.raises(ConversionError):
        gmem.convert_shared(0, "4K")
    assert gmem_vm.dead

@TDX
@pytest.mark.tdx_unmap_failure(error="TDX_BUSY")
def test_bad_code(gmem):
    pass
'''


def test_tdx_unmap_failure_marker_end_to_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tdx=SUITE)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:xdist")
    outcomes = result.parseoutcomes()
    result.stdout.fnmatch_lines(["*test_fatal_without_allow_warn_fails_the_after_test_check*"])
    result.stdout.fnmatch_lines(["*TDX_OPERAND_BUSY*"])  # the bad code's suggestion
    assert outcomes.get("passed") == 3, result.stdout.str()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 2, result.stdout.str()
