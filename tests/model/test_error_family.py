"""One exception family: every error a user's code can meet is a GmemError, an OSError with
the kernel's errno; KernelBug and InvariantViolation are not (a program does not handle them)."""

from __future__ import annotations

import errno

import pytest

import faults
from pytest_gmem import ConversionError, GmemError, GuestFault, Host, InvariantViolation, KernelBug, SigBus


def test_every_user_facing_error_is_a_gmem_error_with_the_kernel_errno() -> None:
    host = Host(revision="fixed", hugetlb={"2M": 4})
    vm = host.create_vm()
    gmem = vm.create_guest_memfd(size="4M", page_size="2M", mmap=True, init_private=True)
    caught: list[GmemError] = []
    with pytest.raises(GmemError) as info:
        gmem.guest_write(8 << 20, b"x")  # outside the file
    caught.append(info.value)
    gmem.guest_write(0, b"private")  # allocates the first 2M folio: the conversion must split it
    with faults.scope(inherit=False):
        faults.inject("guestmem_hugetlb_stash_metadata", "ENOMEM")
        with pytest.raises(GmemError) as info:
            gmem.convert_shared(0, "4K")
    caught.append(info.value)
    assert isinstance(caught[1], ConversionError) and caught[1].errno == errno.ENOMEM
    m = gmem.mmap()
    with pytest.raises(GmemError) as info:
        m.read(0, 8)  # private: the host's access faults
    caught.append(info.value)
    assert isinstance(info.value, SigBus) and info.value.errno == errno.EFAULT
    for exc in caught:
        assert isinstance(exc, OSError) and exc.errno in errno.errorcode, exc
    host.close()


def test_guest_fault_carries_its_errno() -> None:
    exc = GuestFault(errno.EIO, 0x2000, "the VM is dead")
    assert isinstance(exc, GmemError) and exc.errno == errno.EIO and exc.offset == 0x2000
    assert "EIO" in str(exc) and "the VM is dead" in str(exc)


def test_kernel_bug_and_invariant_violation_are_not_os_errors() -> None:
    assert not issubclass(KernelBug, OSError)
    assert not issubclass(InvariantViolation, OSError)


def test_the_docs_example_catches_both_errors_with_one_clause(capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "model.md").read_text()
    block = text[text.index("import errno\nfrom pytest_gmem import GmemError"):]
    exec(block[:block.index("```")], {})
    assert capsys.readouterr().out == "['EAGAIN', 'EFAULT']\n"
