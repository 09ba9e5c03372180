"""A guest_memfd file (mirrors ``virt/kvm/guest_memfd.c``: creation, the ioctls, fallocate,
release; conversions live in ``conversion.py``, split/merge in ``restructure.py``, allocation
and truncation in ``truncate.py``, host mappings in ``mmap.py``).

The object is both the file and its inode. As in Linux, every host mapping holds a reference
on the file (``vma->vm_file``), so ``close(fd)`` releases nothing while a mapping exists: the
guest keeps its memory and its memslot binding. The last reference going runs
``kvm_gmem_release`` (guest mappings zapped, binding gone) and then evicts the inode. Long-term
pins hold folios, not the file: a pinned page outlives the inode and returns to the allocator
when it is unpinned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import uapi
from . import attributes as attributes_mod
from . import conversion, truncate
from .allocator import Allocator, PageAllocator
from .contents import Contents
from .errors import EBADF, EFAULT, EINVAL, EOPNOTSUPP, GuestFault, oserror
from .filemap import Filemap
from .guestmem_hugetlb import HugetlbAllocator
from .host import user_op
from .mmu import GuestMappings, level_for_order
from .shareability import PRIVATE, SHARED, Shareability
from .units import PAGE_SHIFT, PAGE_SIZE, PAGES_PER, as_data, as_offset, fmt_bytes, parse_size

if TYPE_CHECKING:
    from .mmap import HostMapping, Pin
    from .snapshot import Snapshot
    from .vm import VM

SIZE_LOG_MASK = uapi.GUESTMEM_HUGETLB_FLAG_MASK << uapi.GUESTMEM_HUGETLB_FLAG_SHIFT


def flags_from_keywords(flags: int | None, mmap: bool | None, init_private: bool | None,
                        page_size: str | None, abi: str = "rfc-v2") -> int:
    """The keyword form of ``create_guest_memfd`` as the flag bits of the revision's uAPI (OR-ed
    with ``flags``). The keywords mean the same under every uAPI: ``mmap=True`` a mappable file,
    ``init_private`` its initial shareability (rfc-v2: INIT_PRIVATE opts in to private;
    upstream: INIT_SHARED opts in to shared). OSError EINVAL naming the keywords for
    ``init_private=True`` without ``mmap=True`` under rfc-v2."""
    out = 0 if flags is None else flags
    if not isinstance(out, int) or isinstance(out, bool):
        raise TypeError(f"flags must be an int of uapi bits, got {flags!r}")
    for name, val in (("mmap", mmap), ("init_private", init_private)):
        if val is not None and not isinstance(val, bool):
            raise TypeError(f"{name} must be True or False, got {val!r}")
    if abi == "upstream":
        if mmap:
            out |= uapi.GUEST_MEMFD_FLAG_MMAP
            if init_private is False:  # upstream memory is private unless INIT_SHARED
                out |= uapi.GUEST_MEMFD_FLAG_INIT_SHARED
    else:
        if mmap:
            out |= uapi.GUEST_MEMFD_FLAG_SUPPORT_SHARED
        if init_private:
            if not out & uapi.GUEST_MEMFD_FLAG_SUPPORT_SHARED:
                # kvm_gmem_create's EINVAL, said in the keywords the caller wrote, not in flag bits
                given = "with mmap=False" if mmap is False else "without mmap=True"
                raise oserror(EINVAL, f"kvm_gmem_create: init_private=True {given}: GUEST_MEMFD_FLAG_INIT_PRIVATE "
                                      "is only valid with GUEST_MEMFD_FLAG_SUPPORT_SHARED (mmap=True)")
            out |= uapi.GUEST_MEMFD_FLAG_INIT_PRIVATE
    if page_size is not None and page_size != "4K":
        logs = {v: k for k, v in uapi.HUGETLB_SIZE_LOG.items()}
        if page_size not in logs:
            raise ValueError(f"page_size {page_size!r} is not one of '4K', '2M', '1G'")
        hugetlb = uapi.upstream.GUEST_MEMFD_FLAG_HUGETLB_WIP if abi == "upstream" else uapi.GUEST_MEMFD_FLAG_HUGETLB
        out |= hugetlb | (logs[page_size] << uapi.GUESTMEM_HUGETLB_FLAG_SHIFT)
    return out


def _decode_rfc_v2(flags: int) -> tuple[bool, bool, bool]:
    """``kvm_gmem_create`` (RFC v2): (mmappable, init_private, hugetlb); EINVAL for bits the
    series does not take (INIT_PRIVATE only with SUPPORT_SHARED, size bits only with HUGETLB)."""
    valid = uapi.GUEST_MEMFD_FLAG_SUPPORT_SHARED
    if flags & uapi.GUEST_MEMFD_FLAG_SUPPORT_SHARED:
        valid |= uapi.GUEST_MEMFD_FLAG_INIT_PRIVATE
    if flags & uapi.GUEST_MEMFD_FLAG_HUGETLB:
        valid |= uapi.GUEST_MEMFD_FLAG_HUGETLB | SIZE_LOG_MASK
    if flags & ~valid:
        raise oserror(EINVAL, f"kvm_gmem_create: invalid flags {flags:#x} (bits {flags & ~valid:#x})")
    mmappable = bool(flags & uapi.GUEST_MEMFD_FLAG_SUPPORT_SHARED)
    init_private = bool(flags & uapi.GUEST_MEMFD_FLAG_INIT_PRIVATE) or not mmappable
    return mmappable, init_private, bool(flags & uapi.GUEST_MEMFD_FLAG_HUGETLB)


def _decode_upstream(flags: int, vm: VM) -> tuple[bool, bool, bool]:
    """``kvm_gmem_create`` (upstream): ``flags & ~kvm_gmem_get_supported_flags(kvm)`` is EINVAL
    (MMAP always; INIT_SHARED when the VM has no private memory or in-place conversion is on;
    HugeTLB only with the work branch's ``Host(wip_hugetlb=True)``); private unless INIT_SHARED."""
    host = vm.host
    valid = uapi.GUEST_MEMFD_FLAG_MMAP
    if host.gmem_in_place_conversion:
        valid |= uapi.GUEST_MEMFD_FLAG_INIT_SHARED
    hugetlb_bit = uapi.upstream.GUEST_MEMFD_FLAG_HUGETLB_WIP
    if host.wip_hugetlb and flags & hugetlb_bit:
        valid |= hugetlb_bit | SIZE_LOG_MASK
    if flags & ~valid:
        bad = flags & ~valid
        why = ""
        if bad & (hugetlb_bit | SIZE_LOG_MASK) and not host.wip_hugetlb:
            why = ("; HugeTLB is not in linux-next: it exists only on the authors' work branch "
                   "(Host(wip_hugetlb=True))")
        elif bad & uapi.GUEST_MEMFD_FLAG_INIT_SHARED:
            why = "; INIT_SHARED needs in-place conversion on a VM with private memory (gmem_in_place_conversion)"
        raise oserror(EINVAL, f"kvm_gmem_create: invalid flags {flags:#x} (bits {bad:#x}){why}")
    mmappable = bool(flags & uapi.GUEST_MEMFD_FLAG_MMAP)
    return mmappable, not flags & uapi.GUEST_MEMFD_FLAG_INIT_SHARED, bool(flags & hugetlb_bit)


class GuestMemfd:
    """One guest_memfd: see the module docstring and API.md for the operations."""

    def __init__(self, vm: VM, size: int | str, flags: int) -> None:
        """Mirrors ``kvm_gmem_create`` + ``__kvm_gmem_create``: EINVAL for bad flags or size,
        ENOMEM when the HugeTLB subpool cannot reserve the whole file."""
        self.vm = vm
        self.host = vm.host
        nbytes = parse_size(size, "size")
        abi = self.host.revision.abi
        mmappable, init_private, hugetlb = (_decode_upstream(flags, vm) if abi == "upstream"
                                            else _decode_rfc_v2(flags))
        if nbytes <= 0 or nbytes % PAGE_SIZE:
            raise oserror(EINVAL, f"kvm_gmem_create: size {nbytes} is not a positive multiple of 4K")
        self.size = nbytes
        self.flags = flags
        self.nr_pages = nbytes >> PAGE_SHIFT
        self.alloc: Allocator
        if hugetlb:
            log = (flags >> uapi.GUESTMEM_HUGETLB_FLAG_SHIFT) & uapi.GUESTMEM_HUGETLB_FLAG_MASK
            name = uapi.HUGETLB_SIZE_LOG.get(log or 21)
            if name is None:
                raise oserror(EINVAL, f"guestmem_hugetlb_setup: no hstate for page size 2^{log}")
            if self.nr_pages % PAGES_PER[name]:
                raise oserror(EINVAL, f"guestmem_hugetlb_setup: size {fmt_bytes(nbytes)} is not a "
                                      f"multiple of the {name} huge page size")
            self.alloc = HugetlbAllocator(self.host, self.host.pool(name), self.nr_pages)
        else:
            self.alloc = PageAllocator(self.host)
        #: the host may mmap() the file (RFC v2 SUPPORT_SHARED, upstream MMAP)
        self.mmappable = mmappable
        #: the file has a shareability tree, so conversions have work to do (RFC v2: only with
        #: SUPPORT_SHARED; upstream: every guest_memfd has its attributes)
        self.supports_shared = mmappable or abi == "upstream"
        self.share = Shareability(self.nr_pages, init_private)
        self.filemap = Filemap()
        self.contents = Contents()
        self.guest = GuestMappings()
        self.mappings: list[HostMapping] = []
        self.pins: list[Pin] = []
        self.fd_open = True
        self.released = False  # kvm_gmem_release ran: the file's last reference is gone
        self.alive = True  # the inode exists (not yet evicted)
        self.host.files.append(self)

    # --- helpers --------------------------------------------------------------------------
    @property
    def page_size(self) -> str:
        return self.alloc.page_size

    @property
    def nr_pages_in_folio(self) -> int:
        return self.alloc.nr_pages_in_folio

    def _need_fd(self, what: str) -> None:
        if not self.fd_open:
            raise oserror(EBADF, f"{what} on a closed guest_memfd")

    def _offset_index(self, offset: int, what: str) -> int:
        if not isinstance(offset, int) or offset < 0 or offset >= self.size:
            raise ValueError(f"{what}: offset {offset!r} is outside the file (size {fmt_bytes(self.size)})")
        return offset >> PAGE_SHIFT

    # --- ioctls -----------------------------------------------------------------------------
    @user_op
    def convert_shared(self, offset: int, size: int | str, error_offset: int = 0) -> None:
        """Convert to shared in the revision's uAPI: ``KVM_GMEM_CONVERT_SHARED``
        (``kvm_gmem_ioctl_convert_range``) or, under ``upstream``, ``KVM_SET_MEMORY_ATTRIBUTES2``
        with attributes 0 (``error_offset`` is not read there). ConversionError with EINVAL,
        EAGAIN, ENOMEM, or on a TDX VM EIO (VM bugged) / EFAULT (page leaked); OSError EBADF on a
        closed fd, ENOTTY without in-place conversion; KernelBug where rfc-v2 would hang."""
        self._convert(offset, size, True, error_offset, "convert_shared")

    @user_op
    def convert_private(self, offset: int, size: int | str, error_offset: int = 0) -> None:
        """Convert to private in the revision's uAPI: ``KVM_GMEM_CONVERT_PRIVATE`` or, under
        ``upstream``, ``KVM_SET_MEMORY_ATTRIBUTES2`` with ``KVM_MEMORY_ATTRIBUTE_PRIVATE``; the
        same failures as :meth:`convert_shared`."""
        self._convert(offset, size, False, error_offset, "convert_private")

    def _convert(self, offset: int, size: int | str, to_shared: bool, error_offset: int, what: str) -> None:
        off, nbytes = as_offset(offset, f"{what} offset"), parse_size(size)
        if self.host.revision.abi == "upstream":
            self._need_fd(attributes_mod.NAME)
            as_offset(error_offset, "error_offset")
            attributes_mod.set_attributes(self, off, nbytes, 0 if to_shared else uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
            return
        self._need_fd("KVM_GMEM_CONVERT_SHARED" if to_shared else "KVM_GMEM_CONVERT_PRIVATE")
        conversion.ioctl_convert_range(self, off, nbytes, to_shared, as_offset(error_offset, "error_offset"))

    @user_op
    def set_attributes(self, offset: int, size: int | str, attributes: int, flags: int = 0) -> None:
        """``KVM_SET_MEMORY_ATTRIBUTES2`` on this fd (``kvm_gmem_set_attributes``, revision
        ``upstream``): attributes ``KVM_MEMORY_ATTRIBUTE_PRIVATE`` or 0 (shared). ConversionError
        EINVAL (each argument check, in the kernel's order), EAGAIN, ENOMEM, EIO; OSError ENOTTY
        under the RFC v2 uAPI or without in-place conversion, EBADF on a closed fd."""
        self._need_fd(attributes_mod.NAME)
        attributes_mod.set_attributes(self, as_offset(offset, "set_attributes offset"), parse_size(size),
                                      as_offset(attributes, "attributes"), as_offset(flags, "flags"))

    @user_op
    def ioctl(self, request: int, arg: object) -> int:
        """A raw ioctl on the guest_memfd fd (``kvm_gmem_ioctl``): ``request`` the number
        (``uapi.KVM_SET_MEMORY_ATTRIBUTES2``, or the RFC v2 ``KVM_GMEM_CONVERT_*``), ``arg`` a
        ctypes struct, ``bytearray`` or ``bytes`` holding the kernel's struct. On failure
        ``error_offset`` is written back into a writable ``arg`` and the OSError (a
        ConversionError) has the kernel's errno; ENOTTY for a request of the other uAPI,
        EFAULT for a short buffer, EBADF on a closed fd. Returns 0."""
        self._need_fd("ioctl")
        return attributes_mod.ioctl(self, request, arg)

    # --- fallocate ----------------------------------------------------------------------------
    @user_op
    def fallocate(self, mode: int, offset: int, length: int | str) -> None:
        """Mirrors ``vfs_fallocate`` (EINVAL for offset < 0 or length <= 0) then
        ``kvm_gmem_fallocate``: EOPNOTSUPP without KEEP_SIZE or with other bits, EINVAL if
        misaligned; allocation past the size EINVAL; punching may fail with EAGAIN (pinned)."""
        self._need_fd("fallocate")
        mode = as_offset(mode, "fallocate mode")
        offset = as_offset(offset, "fallocate offset")
        length = parse_size(length, "length")
        self.host.begin_op(f"fallocate(mode={mode:#x}, {offset:#x}, {length:#x})")
        if offset < 0 or length <= 0:
            raise oserror(EINVAL, f"vfs_fallocate: offset {offset:#x} / length {length:#x}: "
                                  "offset must be >= 0 and length > 0")
        if not mode & uapi.FALLOC_FL_KEEP_SIZE:
            raise oserror(EOPNOTSUPP, "kvm_gmem_fallocate: mode needs FALLOC_FL_KEEP_SIZE")
        if mode & ~(uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE):
            raise oserror(EOPNOTSUPP, f"kvm_gmem_fallocate: unsupported mode {mode:#x}")
        if offset % PAGE_SIZE or length % PAGE_SIZE or offset < 0 or length < 0:
            raise oserror(EINVAL, f"kvm_gmem_fallocate: offset {offset:#x} / length {length:#x} not 4K aligned")
        if mode & uapi.FALLOC_FL_PUNCH_HOLE:
            truncate.punch_hole(self, offset, length)
        else:
            truncate.allocate(self, offset, length)

    @user_op
    def punch_hole(self, offset: int, length: int | str) -> None:
        """``fallocate(KEEP_SIZE | PUNCH_HOLE)``."""
        self.fallocate(uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE, offset, length)

    # --- mmap ---------------------------------------------------------------------------------
    @user_op
    def mmap(self) -> HostMapping:
        """``kvm_gmem_mmap``: ENODEV without SUPPORT_SHARED (upstream: MMAP). Each call is a
        separate mapping."""
        from .mmap import HostMapping

        self._need_fd("mmap")
        if not self.mmappable:
            flag = "MMAP" if self.host.revision.abi == "upstream" else "SUPPORT_SHARED"
            raise oserror(19, f"kvm_gmem_mmap: guest_memfd was created without GUEST_MEMFD_FLAG_{flag}")
        m = HostMapping(self)
        self.mappings.append(m)
        return m

    # --- the guest ----------------------------------------------------------------------------
    @user_op
    def guest_read(self, offset: int, length: int) -> bytes:
        """The guest reads its memory, faulting it in through ``kvm_gmem_get_pfn``: GuestFault
        (EFAULT outside the binding or after release, EIO on a dead VM), OSError ENOMEM when a
        folio cannot be allocated."""
        self._guest_fault(as_offset(offset, "guest_read offset"), as_offset(length, "guest_read length"),
                          write=False)
        return self.contents.read(offset, length)

    @user_op
    def guest_write(self, offset: int, data: bytes) -> None:
        """The guest writes its memory (``kvm_gmem_get_pfn`` as for :meth:`guest_read`, same
        failures)."""
        data = as_data(data, "guest_write data")
        self._guest_fault(as_offset(offset, "guest_write offset"), len(data), write=True)
        self.contents.write(offset, data)

    @user_op
    def guest_fill(self, offset: int, length: int, byte: int) -> None:
        """The guest memsets a range (cheap for large ranges); ``kvm_gmem_get_pfn`` as for
        :meth:`guest_read`, same failures."""
        self._guest_fault(offset, length, write=True)
        self.contents.fill(offset, length, byte)

    @user_op
    def guest_accept(self, offset: int, length: int) -> None:
        """The guest accepts private pages (TDX ``TDG.MEM.PAGE.ACCEPT``): needed on a TDX VM
        before touching a page that became private again; a no-op on other VM types."""
        self.vm.check_alive(offset)
        if self.released:
            raise GuestFault(EFAULT, offset, "the guest_memfd was released (no binding)")
        if length <= 0:
            return
        if offset < 0 or offset + length > self.size or offset % PAGE_SIZE or length % PAGE_SIZE:
            raise GuestFault(EFAULT, offset, f"accept of [{offset:#x}, +{length:#x}) is misaligned "
                                             "or outside the guest_memfd binding")
        self.host.begin_op(f"guest accept({offset:#x}, {length:#x})")
        self.vm.guest_accept(self, offset >> PAGE_SHIFT, (offset + length) >> PAGE_SHIFT)

    def _guest_fault(self, offset: int, length: int, write: bool) -> None:
        """``kvm_gmem_get_pfn`` + the MMU's choice of mapping level for each page touched."""
        self.vm.check_alive(offset)
        if self.released:
            raise GuestFault(EFAULT, offset, "the guest_memfd was released (no binding)")
        if length <= 0:
            return
        if offset < 0 or offset + length > self.size:
            raise GuestFault(EFAULT, offset, "outside the guest_memfd binding")
        self.host.begin_op(f"guest {'write' if write else 'read'}({offset:#x}, {length:#x})")
        first = offset >> PAGE_SHIFT
        last = (offset + length + PAGE_SIZE - 1) >> PAGE_SHIFT
        for s, e, share in self.share.ranges(first, last):
            truncate.get_folios(self, s, e)
            if share == PRIVATE:
                self.vm.guest_access_private(self, s, e, write)
            self._map_guest(s, e, share == PRIVATE)

    def _map_guest(self, start: int, end: int, private: bool) -> None:
        """Mirrors ``kvm_tdp_mmu_map`` at ``kvm_gmem_max_mapping_level``: huge only for a fully
        private range with an unsplit folio (``kvm_gmem_mapping_order``), at most at the arch's
        level (``vm.max_private_level``: TDX maps private memory at 2M at most) and where the
        arch allows (``vm.may_map_huge``: TDX maps at the guest's accept level); cannot fail."""
        cap = self.vm.max_private_level
        for run in list(self.filemap.runs(start, end)):
            s, e = max(run.start, start), min(run.end, end)
            if not (private and run.folio_nr > 1 and not self.share.has_any(run.start, run.end, SHARED)):
                self._map_small(s, e, private)
                continue
            level = level_for_order(run.folio_nr)
            if cap is not None and PAGES_PER[level] > PAGES_PER[cap]:
                level = cap
            step = PAGES_PER[level]
            for c in range(s - (s - run.start) % step, e, step):  # each huge entry [s, e) touches
                if self.guest.level_at(c) == level:
                    continue
                if self.vm.may_map_huge(self, c, c + step):
                    self.guest.zap(c, c + step)
                    self.guest.install(c, c + step, level, True)
                else:
                    self._map_small(max(c, s), min(c + step, e), True)

    def _map_small(self, start: int, end: int, private: bool) -> None:
        """4K mappings for ``[start, end)``. A mapping of the other kind is zapped, and so is a
        huge one, except where the arch caps private levels (TDX): there a huge private entry
        made before its folio was split stays (the TDX module maps the memory, not the folio)."""
        keep_huge = self.vm.max_private_level is not None
        for ms, me, m in list(self.guest.map.items(start, end)):
            if m.private != private or (m.level != "4K" and not keep_huge):
                self.guest.zap(ms, me)
        for gs, ge in list(self.guest.map.gaps(start, end)):
            self.guest.install(gs, ge, "4K", private)

    def guest_mapping_level(self, offset: int) -> str | None:
        """The level the guest maps that page at: "4K", "2M", "1G" or None."""
        return self.guest.level_at(self._offset_index(offset, "guest_mapping_level"))

    # --- views ----------------------------------------------------------------------------------
    def shareability(self, offset: int) -> str:
        """`kvm_gmem_shareability_get`: "shared" or "private"."""
        return self.share.get(self._offset_index(offset, "shareability"))

    def ranges(self) -> list[tuple[int, int, str]]:
        """The shareability tree as byte ranges ``(start, end, "shared"/"private")``, coalesced."""
        return [(s << PAGE_SHIFT, e << PAGE_SHIFT, v) for s, e, v in self.share.ranges()]

    def folios(self) -> Iterator[tuple[int, int, int]]:
        """The filemap: ``(offset, nr_pages, refcount)`` per folio, in offset order."""
        for run in self.filemap.all_runs():
            n = run.folio_nr
            for a, b, refs in run.block.ref_runs(run.start, run.end, n):
                for i in range(a, b, n):
                    yield (i << PAGE_SHIFT, n, refs)

    def snapshot(self) -> Snapshot:
        """The file's own state as a value (see snapshot.py)."""
        from .snapshot import take

        return take(self)

    # --- lifetime -------------------------------------------------------------------------------
    @user_op
    def close(self) -> None:
        """``close(2)`` on the fd: drops the fd's reference on the file. ``kvm_gmem_release``
        runs only when no host mapping holds the file any more (see :meth:`maybe_release`)."""
        if not self.fd_open:
            return
        self.host.begin_op("close(guest_memfd)")
        self.fd_open = False
        self.maybe_release()

    def maybe_release(self) -> None:
        """The last ``fput``: once neither the fd nor a mapping holds the file, mirrors
        ``kvm_gmem_release`` (zap every guest mapping, unbind the memslots) and then the
        ``iput`` that evicts the inode. Pins hold folios, not the file. Cannot fail."""
        if self.released or self.fd_open or self.mappings:
            return
        self.released = True
        self.vm.zap_all(self, 0, self.nr_pages)
        truncate.evict_inode(self)

    def close_everything(self) -> None:
        for m in list(self.mappings):
            m.munmap()
        for p in list(self.pins):
            p.unpin()
        self.close()

    def __repr__(self) -> str:
        if "fd_open" not in self.__dict__:  # __init__ refused it (pytest -l shows the locals)
            return "GuestMemfd(not created)"
        state = "open" if self.fd_open else ("mapped, fd closed" if not self.released else "released")
        return f"GuestMemfd(size={fmt_bytes(self.size)}, page_size={self.page_size}, flags={self.flags:#x}, {state})"
