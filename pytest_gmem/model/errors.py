"""Exceptions the model raises where the kernel returns an errno, delivers a signal, or breaks.

Every error a user's code can meet and handle is a :class:`GmemError`: an ``OSError`` whose
``.errno`` is the kernel's (``ConversionError`` from the conversion ioctls, ``SigBus`` from a
host access through ``mmap()``, ``GuestFault`` from a guest access, and the plain ``GmemError``
of every other call: ``fallocate``, ``pread``, ``guest_write``, ...), so one ``except GmemError``
(or ``except OSError``) clause handles them all. ``KernelBug`` (the real kernel would hang or
crash) and ``InvariantViolation`` (the checker) are not errors a program handles: they are not
``OSError``.
"""

from __future__ import annotations

import errno as _errno
import os


class GmemError(OSError):
    """A failed call into the model, as the kernel would fail it: ``.errno`` is the kernel's
    errno, ``.strerror`` its standard text and the model's explanation."""

    def __init__(self, code: int, what: str) -> None:
        super().__init__(code, f"{os.strerror(code)}: {what}")
        self.what = what  # the model's explanation alone, for messages that wrap this error


def explanation(exc: OSError) -> str:
    """The explanation of ``exc`` without its errno text (which the wrapping error repeats)."""
    return getattr(exc, "what", None) or str(exc)


def oserror(code: int, what: str) -> GmemError:
    """A :class:`GmemError` with the errno's standard text and the model's explanation."""
    return GmemError(code, what)


class ConversionError(GmemError):
    """A failed ``KVM_GMEM_CONVERT_SHARED`` / ``_PRIVATE`` ioctl: ``.errno`` and ``.error_offset``
    (the byte offset the kernel copied back to userspace; under ``rfc-v2`` with ENOMEM it is the
    uninitialised stack value, see ``.error_offset_valid``)."""

    def __init__(self, code: int, what: str, error_offset: int, error_offset_valid: bool = True) -> None:
        super().__init__(code, what)
        self.error_offset = error_offset
        self.error_offset_valid = error_offset_valid


class SigBus(GmemError):
    """A host access through an ``mmap()`` of the file faulted with SIGBUS at ``.offset``
    (``.errno`` is EFAULT: what a ``read()`` from that mapping into the kernel would return)."""

    def __init__(self, offset: int, why: str) -> None:
        super().__init__(_errno.EFAULT, f"SIGBUS at offset {offset:#x}: {why}")
        self.offset = offset
        self.why = why


class GuestFault(GmemError):
    """The guest's access could not be satisfied (``.errno``: what KVM_RUN would return,
    e.g. EIO for a dead VM, EFAULT for memory outside the file)."""

    def __init__(self, code: int, offset: int, why: str) -> None:
        super().__init__(code, f"guest access at offset {offset:#x} failed with "
                               f"{_errno.errorcode.get(code, code)}: {why}")
        self.offset = offset


class InvariantViolation(AssertionError):
    """``host.check()`` found broken invariants; ``.violations`` names each one."""

    def __init__(self, violations: list[str], state: str = "") -> None:
        self.violations = violations
        self.state = state
        text = "\n".join(f"  - {v}" for v in violations)
        super().__init__(f"{len(violations)} invariant(s) broken:\n{text}" + (f"\n{state}" if state else ""))


class KernelBug(Exception):
    """The real kernel would hang or crash here; the model stopped after a bounded number of
    steps. ``.function`` is the kernel function, ``.detail`` what a kernel developer needs."""

    def __init__(self, function: str, detail: str) -> None:
        super().__init__(f"kernel bug in {function}(): {detail}")
        self.function = function
        self.detail = detail


EAGAIN, EINVAL, ENOMEM, EFAULT, ENODEV, EOPNOTSUPP, ENOTTY, EEXIST, EIO, EBADF = (
    _errno.EAGAIN, _errno.EINVAL, _errno.ENOMEM, _errno.EFAULT, _errno.ENODEV,
    _errno.EOPNOTSUPP, _errno.ENOTTY, _errno.EEXIST, _errno.EIO, _errno.EBADF,
)


class ConvFailure(Exception):
    """Internal: a kernel step failed with ``errno`` at ``error_index`` (None: never set)."""

    def __init__(self, errno: int, error_index: int | None, why: str) -> None:
        super().__init__(why)
        self.errno = errno
        self.error_index = error_index
        self.why = why
