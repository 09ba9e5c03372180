"""``KVM_SET_MEMORY_ATTRIBUTES2`` on the guest_memfd fd (mirrors ``kvm_gmem_set_attributes``
and ``__kvm_gmem_set_attributes`` in virt/kvm/guest_memfd.c of the in-place conversion series
as in linux-next), and the raw ioctl entry of both uAPIs (``kvm_gmem_ioctl``).

The conversion itself is the ``prealloc`` order (``conversion.convert_range_prealloc``): the
early return when the range already has the attributes, the maple-tree preallocation (ENOMEM,
``error_offset`` = the start), the unmap and refcount check of a to-private conversion (EAGAIN,
``error_offset`` = the first folio with unexpected references, not before the start), then the
point of no return; nothing is rolled back because nothing can fail after it.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

from .. import uapi
from ..uapi.ioc import _IOC_SIZE
from .conversion import ioctl_convert_range, run_conversion
from .errors import EFAULT, EINVAL, ENOTTY, ConversionError, oserror
from .units import PAGE_SHIFT, PAGE_SIZE, U64_MASK

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd

NAME = "KVM_SET_MEMORY_ATTRIBUTES2"


def set_attributes(g: GuestMemfd, offset: int, size: int, attributes: int, flags: int = 0,
                   reserved: tuple[int, ...] = ()) -> None:
    """Mirrors ``kvm_gmem_set_attributes``: ENOTTY without in-place conversion; EINVAL, in the
    kernel's order, for flags, reserved words, unknown attributes, size 0 or overflow,
    misalignment, a range past i_size; then ``__kvm_gmem_set_attributes`` (ConversionError
    EAGAIN / ENOMEM, EIO on a bugged TDX VM). The input ``error_offset`` is not read."""
    g.host.begin_op(f"{NAME}(offset={offset:#x}, size={size:#x}, attributes={attributes:#x})")
    if g.host.revision.abi != "upstream":
        raise oserror(ENOTTY, f"{NAME}: revision {g.host.revision.name!r} speaks the RFC v2 uAPI "
                              "(KVM_GMEM_CONVERT_SHARED / KVM_GMEM_CONVERT_PRIVATE)")
    if not g.host.gmem_in_place_conversion:
        raise oserror(ENOTTY, f"{NAME}: in-place conversion is off (kvm.gmem_in_place_conversion=0)")

    def einval(why: str) -> ConversionError:
        return ConversionError(EINVAL, f"{NAME}: {why}", 0, error_offset_valid=False)

    if flags != 0:
        raise einval(f"flags {flags:#x} must be 0")
    bad = next((i for i, word in enumerate(reserved) if word), None)
    if bad is not None:
        raise einval(f"reserved[{bad}] = {reserved[bad]:#x} must be 0")
    if attributes & ~uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE:
        raise einval(f"attributes {attributes:#x}: only KVM_MEMORY_ATTRIBUTE_PRIVATE "
                     f"({uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE:#x}) is supported")
    if size == 0 or offset + size > U64_MASK or offset + size < offset:
        raise einval(f"size {size:#x} at offset {offset:#x} is 0 or overflows")
    if offset % PAGE_SIZE or size % PAGE_SIZE:
        raise einval(f"offset {offset:#x} / size {size:#x} not 4K aligned")
    if offset >= g.size or offset + size > g.size:
        raise einval(f"range {offset:#x}+{size:#x} is past the file's size {g.size:#x}")
    to_shared = not attributes & uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE
    run_conversion(g, NAME, offset >> PAGE_SHIFT, size >> PAGE_SHIFT, to_shared)


# --- the raw ioctl ---------------------------------------------------------------------------
#: request number -> (struct, ABI it belongs to, what it does)
REQUESTS: dict[int, tuple[type[ctypes.Structure], str, str]] = {
    uapi.KVM_SET_MEMORY_ATTRIBUTES2: (uapi.upstream.kvm_memory_attributes2, "upstream", NAME),
    uapi.KVM_GMEM_CONVERT_SHARED: (uapi.rfc_v2.kvm_gmem_convert, "rfc-v2", "KVM_GMEM_CONVERT_SHARED"),
    uapi.KVM_GMEM_CONVERT_PRIVATE: (uapi.rfc_v2.kvm_gmem_convert, "rfc-v2", "KVM_GMEM_CONVERT_PRIVATE"),
}


def ioctl(g: GuestMemfd, request: int, arg: Any) -> int:
    """Mirrors ``kvm_gmem_ioctl``: ENOTTY for a request the revision's uAPI does not have;
    ``copy_from_user`` of ``_IOC_SIZE(request)`` bytes (EFAULT when ``arg`` is shorter or not a
    buffer); the ioctl; on failure ``error_offset`` written back into ``arg`` when it is
    writable (a ``bytearray``, a ctypes struct) and the ``OSError`` re-raised. Returns 0."""
    if isinstance(request, bool) or not isinstance(request, int):
        raise TypeError(f"ioctl request must be an int, got {request!r}")
    known = REQUESTS.get(request)
    abi = g.host.revision.abi
    if known is None or known[1] != abi:
        what = f" ({known[2]}, of the {known[1]} uAPI)" if known else ""
        ours = ", ".join(f"{n} = {r:#x}" for r, (_, a, n) in REQUESTS.items() if a == abi)
        raise oserror(ENOTTY, f"kvm_gmem_ioctl: request {request:#x}{what} is not a guest_memfd ioctl of "
                              f"revision {g.host.revision.name!r} (it has {ours})")
    struct_type, _, name = known
    want = _IOC_SIZE(request)
    try:
        view = memoryview(arg).cast("B")
    except TypeError:
        raise oserror(EFAULT, f"{name}: copy_from_user: the argument {type(arg).__name__} is not a buffer "
                              f"(pass a ctypes {struct_type.__name__}, bytes or a bytearray)") from None
    if view.nbytes < want:
        raise oserror(EFAULT, f"{name}: copy_from_user of struct {struct_type.__name__} ({want} bytes): the "
                              f"argument holds only {view.nbytes} bytes")
    args = struct_type.from_buffer_copy(view[:want])
    try:
        if name == NAME:
            a = args
            set_attributes(g, a.offset, a.size, a.attributes, a.flags, tuple(a.reserved))
        else:
            c = args  # RFC v2 does not look at reserved[]
            ioctl_convert_range(g, c.offset, c.size, name.endswith("SHARED"), c.error_offset)
    except ConversionError as exc:
        if exc.errno != EINVAL or exc.error_offset_valid:
            _write_back(view, struct_type, exc.error_offset)
        raise
    return 0


def _write_back(view: memoryview, struct_type: type[ctypes.Structure], error_offset: int) -> None:
    """``copy_to_user`` of ``error_offset`` into the caller's buffer, when it can be written."""
    if view.readonly:
        return
    field = struct_type.error_offset
    view[field.offset:field.offset + 8] = (error_offset & U64_MASK).to_bytes(8, "little")
