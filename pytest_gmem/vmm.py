"""A reference userspace conversion loop: what a VMM does with the errors of
``KVM_GMEM_CONVERT_SHARED`` / ``KVM_GMEM_CONVERT_PRIVATE``.

Read it, copy it, or pass your own policy object. The rules come from the RFC v2 thread (seed
message ``diqztt4uhunj.fsf@ackerleytng-ctop.c.googlers.com``): "The userspace VMM is obligated
to keep trying convert and if it gives up, userspace VMM should inform the guest that the
conversion failed."

=========  =====================================================  ============================
errno      meaning                                                what :func:`convert` does
=========  =====================================================  ============================
0          converted (the ioctl is all or nothing)                report success
EAGAIN     a folio at ``error_offset`` holds unexpected           ``policy.drop_references``,
           references (a pin, an IOMMU mapping, a speculative     retry (at most
           reference)                                             ``max_eagain_retries``)
ENOMEM     the kernel ran out of memory (maple tree, split        ``policy.free_memory``, retry
           metadata, vmemmap, page cache)                         (``max_enomem_retries``)
EFAULT     TDX holds a page after a failed S-EPT removal          give up, tell the guest
           (reviewer's "leak" policy); never goes away
EIO        the VM is bugged (``KVM_BUG_ON``)                      give up, tell the guest
EINVAL     bad arguments                                          give up, tell the guest
=========  =====================================================  ============================

Every decision is an :class:`Attempt` in ``Result.attempts``. A failed conversion is never
reported as a success: ``Result.ok`` is True only when the last ioctl returned 0, and every
other outcome calls ``policy.notify_guest_failure`` before returning.

    policy = DefaultPolicy(max_eagain_retries=2)
    pin = policy.own(mapping.pin(0, "2M"))        # a reference the VMM may drop on EAGAIN
    result = convert(gmem, 0, "2M", to_shared=False, policy=policy)
    if not result.ok:
        ...                                        # the guest has been told already
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .model.errors import ConversionError
from .model.units import PAGE_SHIFT, PAGE_SIZE, parse_size

if TYPE_CHECKING:
    from .model.guest_memfd import GuestMemfd
    from .model.mmap import Pin

__all__ = ["Attempt", "ConversionPolicy", "DefaultPolicy", "GuestNotice", "Result", "convert"]


@dataclass(frozen=True)
class Attempt:
    """One ioctl and what the loop decided after it."""

    number: int  # 1-based
    errno: int  # 0 on success
    error_offset: int | None  # what the kernel copied back (None: success or not meaningful)
    action: str  # "done", "drop_references", "free_memory", "give_up"
    detail: str = ""

    @property
    def errname(self) -> str:
        return "OK" if self.errno == 0 else _errno.errorcode.get(self.errno, str(self.errno))

    def __str__(self) -> str:
        at = "" if self.error_offset is None else f" at {self.error_offset:#x}"
        extra = f" ({self.detail})" if self.detail else ""
        return f"#{self.number} {self.errname}{at} -> {self.action}{extra}"


@dataclass(frozen=True)
class GuestNotice:
    """What the VMM told the guest: this conversion failed (e.g. a MapGPA error return)."""

    offset: int
    size: int
    to_shared: bool
    errno: int
    error_offset: int | None


@dataclass(frozen=True)
class Result:
    """The outcome of :func:`convert`."""

    ok: bool
    offset: int
    size: int
    to_shared: bool
    attempts: tuple[Attempt, ...]
    errno: int = 0  # of the last attempt
    error_offset: int | None = None
    guest_notified: bool = False

    def log(self) -> str:
        """The decisions, one line per attempt."""
        return "\n".join(str(a) for a in self.attempts)

    def __bool__(self) -> bool:
        return self.ok


class ConversionPolicy(Protocol):
    """What :func:`convert` asks the VMM. Implement it to plug in your own decisions."""

    max_eagain_retries: int
    max_enomem_retries: int

    def drop_references(self, gmem: GuestMemfd, error_offset: int) -> bool:
        """EAGAIN: drop the long-term references this VMM owns on the folio at ``error_offset``
        (unpin, unmap from the IOMMU). Return True when something was dropped."""
        ...

    def free_memory(self, gmem: GuestMemfd) -> bool:
        """ENOMEM: make memory available (drop caches, balloon, let deferred work run). Return
        True when retrying makes sense."""
        ...

    def notify_guest_failure(self, gmem: GuestMemfd, notice: GuestNotice) -> None:
        """The VMM gives up: tell the guest the conversion failed."""
        ...


@dataclass
class DefaultPolicy:
    """The reference policy: drops the pins registered with :meth:`own` that touch the folio
    the kernel named, lets the host's deferred work run on ENOMEM (``host.flush_work()``, then
    ``free_memory_hook`` if given), and records every notice to the guest in ``guest_notices``
    (and calls ``on_guest_failure`` if given)."""

    max_eagain_retries: int = 3
    max_enomem_retries: int = 3
    free_memory_hook: Callable[[GuestMemfd], bool] | None = None
    on_guest_failure: Callable[[GuestNotice], None] | None = None
    pins: list[Pin] = field(default_factory=list)
    dropped: list[Pin] = field(default_factory=list)
    guest_notices: list[GuestNotice] = field(default_factory=list)

    def own(self, pin: Pin) -> Pin:
        """Register a long-term reference this VMM may drop when a conversion needs it."""
        self.pins.append(pin)
        return pin

    def drop_references(self, gmem: GuestMemfd, error_offset: int) -> bool:
        start, end = _folio_at(gmem, error_offset)
        victims = [p for p in self.pins if p.gmem is gmem and p.live
                   and (p.start << PAGE_SHIFT) < end and (p.end << PAGE_SHIFT) > start]
        for p in victims:
            p.unpin()
            self.pins.remove(p)
            self.dropped.append(p)
        return bool(victims)

    def free_memory(self, gmem: GuestMemfd) -> bool:
        gmem.host.flush_work()
        if self.free_memory_hook is not None:
            return self.free_memory_hook(gmem)
        return True

    def notify_guest_failure(self, gmem: GuestMemfd, notice: GuestNotice) -> None:
        self.guest_notices.append(notice)
        if self.on_guest_failure is not None:
            self.on_guest_failure(notice)


def convert(gmem: GuestMemfd, offset: int, size: int | str, to_shared: bool,
            policy: ConversionPolicy) -> Result:
    """Convert ``[offset, +size)`` the way a VMM must: retry EAGAIN after dropping references,
    retry ENOMEM after freeing memory (each a bounded number of times), otherwise give up and
    notify the guest. Never raises ConversionError."""
    nbytes = parse_size(size, "size")
    ioctl = gmem.convert_shared if to_shared else gmem.convert_private
    attempts: list[Attempt] = []
    eagain = enomem = 0
    while True:
        n = len(attempts) + 1
        try:
            ioctl(offset, nbytes)
        except ConversionError as e:
            code = e.errno if e.errno is not None else _errno.EIO
            where = e.error_offset if e.error_offset_valid else None
            if code == _errno.EAGAIN and eagain < policy.max_eagain_retries:
                eagain += 1
                dropped = policy.drop_references(gmem, offset if where is None else where)
                attempts.append(Attempt(n, code, where, "drop_references",
                                        "dropped owned references" if dropped else "nothing owned there; retrying"))
                continue
            if code == _errno.ENOMEM and enomem < policy.max_enomem_retries:
                enomem += 1
                if policy.free_memory(gmem):
                    attempts.append(Attempt(n, code, where, "free_memory", f"retry {enomem}"))
                    continue
                why = "no memory could be freed"
            elif code in (_errno.EAGAIN, _errno.ENOMEM):
                why = f"{_errno.errorcode[code]} retries exhausted"
            else:
                why = f"{_errno.errorcode.get(code, code)} is not retryable"
            attempts.append(Attempt(n, code, where, "give_up", why))
            notice = GuestNotice(offset, nbytes, to_shared, code, where)
            policy.notify_guest_failure(gmem, notice)
            return Result(False, offset, nbytes, to_shared, tuple(attempts), code, where, True)
        attempts.append(Attempt(n, 0, None, "done"))
        return Result(True, offset, nbytes, to_shared, tuple(attempts))


def _folio_at(gmem: GuestMemfd, offset: int) -> tuple[int, int]:
    """The byte range of the folio containing ``offset`` (a 4K page if none is allocated)."""
    for start, nr_pages, _ in gmem.folios():
        end = start + nr_pages * PAGE_SIZE
        if start <= offset < end:
            return start, end
        if start > offset:
            break
    return offset, offset + PAGE_SIZE
