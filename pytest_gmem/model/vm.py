"""VMs (mirrors ``kvm_create_vm`` and the arch hooks guest_memfd calls).

A ``VM`` owns the guest page tables of every file created for it. Subclasses change the arch
behaviour: the TDX VM (``tdx.py``) keeps private pages in the S-EPT and clears them on
conversion to shared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import EIO, ConvFailure, GuestFault
from .host import user_op
from .shareability import PRIVATE, SHARED
from .units import PAGE_SHIFT

if TYPE_CHECKING:
    from .guest_memfd import GuestMemfd
    from .host import Host

VM_TYPES: dict[str, Callable[..., VM]] = {}


class VM:
    """A software-protected VM (``KVM_X86_SW_PROTECTED_VM``): contents survive conversions."""

    vm_type = "sw_protected"
    #: whether private contents survive conversion to shared (False for TDX)
    preserves_contents = True
    #: the largest level private memory is mapped at (None: the folio's; TDX: "2M")
    max_private_level: str | None = None

    def __init__(self, host: Host, **options: Any) -> None:
        if options:
            raise TypeError(f"vm_type {self.vm_type!r} takes no options, got {sorted(options)}")
        self.host = host
        self.files: list[GuestMemfd] = []
        self.dead = False  # KVM_BUG_ON: the VM is bugged and every access fails
        self.death: str | None = None  # why KVM_BUG_ON fired, when the arch says

    @user_op
    def create_guest_memfd(
        self,
        size: int | str | None = None,
        flags: int | None = None,
        *,
        mmap: bool | None = None,
        init_private: bool | None = None,
        page_size: str | None = None,
    ) -> GuestMemfd:
        """``KVM_CREATE_GUEST_MEMFD`` (flags form or keyword form); OSError EINVAL / ENOMEM."""
        from .guest_memfd import GuestMemfd, flags_from_keywords

        if size is None:
            raise TypeError("create_guest_memfd() needs a size (bytes or a string like '2M')")
        all_flags = flags_from_keywords(flags, mmap, init_private, page_size, self.host.revision.abi)
        g = GuestMemfd(self, size, all_flags)
        self.files.append(g)
        return g

    # --- arch hooks guest_memfd calls -------------------------------------------------------
    def check_alive(self, offset: int) -> None:
        if self.dead:
            raise GuestFault(EIO, offset, "the VM is bugged (KVM_BUG_ON); KVM_RUN returns -EIO")

    def check_convert(self, g: GuestMemfd, start: int, end: int, to_shared: bool) -> None:
        """Before a conversion allocates anything: a bugged VM's files are not touched when the
        range has something to convert (``ConvFailure`` EIO; the model's reading of KVM_BUG_ON,
        see docs/tdx-and-vmm.md)."""
        if self.dead and g.share.has_any(start, end, PRIVATE if to_shared else SHARED):
            why = f"KVM_BUG_ON: {self.death}" if self.death else "KVM_BUG_ON"
            raise ConvFailure(EIO, start, f"the VM is bugged ({why}); KVM refuses to touch its memory")

    def precheck_convert(self, g: GuestMemfd, start: int, end: int, to_shared: bool) -> None:
        """Arch checks of one work item that change nothing the guest can see (TDX: the S-EPT
        split of huge entries straddling the range, a folio TDX holds); may raise ``ConvFailure``."""
        return None

    def remove_for_convert(self, g: GuestMemfd, start: int, end: int) -> None:
        """Arch removal of a to-shared work item's private pages while the conversion can still
        fail (TDX: ``TDH.MEM.PAGE.REMOVE``; ``ConvFailure`` EIO on a fatal error)."""
        return None

    def prepare_convert(self, g: GuestMemfd, start: int, end: int, to_shared: bool) -> None:
        """The arch part of ``kvm_gmem_convert_should_proceed`` for one work item (rfc-v2, fixed):
        ``precheck_convert``, then to shared ``remove_for_convert``."""
        self.precheck_convert(g, start, end, to_shared)
        if to_shared:
            self.remove_for_convert(g, start, end)

    def may_map_huge(self, g: GuestMemfd, start: int, end: int) -> bool:
        """Whether a fault may install one huge private mapping for ``[start, end)`` (an unsplit,
        fully private folio not yet mapped huge); TDX maps at the level the guest accepted."""
        return True

    def rollback_state(self, g: GuestMemfd, start: int, end: int) -> object:
        """Arch state of pages ``[start, end)`` a failed conversion must restore (TDX: the
        accept state); None here."""
        return None

    def unmap_private(self, g: GuestMemfd, start: int, end: int) -> None:
        """``kvm_gmem_unmap_private``: zap the guest's private mappings (cannot fail here)."""
        g.guest.zap(start, end, private=True)

    def unmap_shared(self, g: GuestMemfd, start: int, end: int) -> None:
        """MMU-notifier zap of shared SPTEs after ``unmap_mapping_pages``."""
        g.guest.zap(start, end, private=False)

    def zap_all(self, g: GuestMemfd, start: int, end: int) -> None:
        """``kvm_gmem_invalidate_begin_and_zap`` (punch hole, release)."""
        g.guest.zap(start, end, None)

    def converted(self, g: GuestMemfd, start: int, end: int, to_shared: bool) -> None:
        """After a range changed shareability (TDX clears to-shared pages)."""
        return None

    def guest_access_private(self, g: GuestMemfd, start: int, end: int, write: bool) -> None:
        """The guest touches private pages ``[start, end)`` (TDX checks acceptance)."""
        return None

    def guest_accept(self, g: GuestMemfd, start: int, end: int) -> None:
        """The guest accepts private pages (TDX ``TDG.MEM.PAGE.ACCEPT``); nothing to do here."""
        self.check_alive(start << PAGE_SHIFT)

    def __repr__(self) -> str:
        return f"VM({self.vm_type!r}, files={len(self.files)}{', dead' if self.dead else ''})"


VM_TYPES["sw_protected"] = VM


#: ``KVM_CREATE_VM`` type numbers (``uapi.KVM_X86_*_VM``) accepted for the names
VM_TYPE_NUMBERS = {1: "sw_protected", 5: "tdx"}


def make_vm(host: Host, vm_type: str | int, **options: Any) -> VM:
    """``KVM_CREATE_VM``: by name ("sw_protected", "tdx") or by the uapi type number."""
    if isinstance(vm_type, int) and not isinstance(vm_type, bool) and vm_type in VM_TYPE_NUMBERS:
        vm_type = VM_TYPE_NUMBERS[vm_type]
    if vm_type == "tdx" and "tdx" not in VM_TYPES:
        import importlib

        importlib.import_module(f"{__package__}.tdx")  # registers itself
    cls = VM_TYPES.get(vm_type) if isinstance(vm_type, str) else None
    if cls is None:
        raise ValueError(
            f"unknown vm_type {vm_type!r}; choose one of {', '.join(sorted(VM_TYPES | {'tdx': VM}))}"
        )
    return cls(host, **options)
