"""HugeTLB pools and subpools (mirrors ``mm/hugetlb.c``: hstate counters, ``hugepage_subpool``).

Counters follow /sys/kernel/mm/hugepages/hugepages-*/: ``total`` (nr_hugepages), ``free``
(free_hugepages) and ``resv`` (resv_hugepages). A guest_memfd subpool reserves the whole file at
creation (``min = max = size / hpage``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faults

from .errors import ENOMEM, oserror

P_NEW_SUBPOOL = faults.declare(
    "hugepage_new_subpool", {"ENOMEM"},
    """hugepage_new_subpool() at guest_memfd creation: kzalloc of the subpool, or
    hugetlb_acct_memory() finding fewer free unreserved huge pages than the file needs.""",
    reached="a guest_memfd file with 2M or 1G pages is created (its subpool reserves the file's huge "
    "pages).",
)
P_SUBPOOL_GET = faults.declare(
    "hugepage_subpool_get_pages", {"ENOMEM"},
    """hugepage_subpool_get_pages() in guestmem_hugetlb_alloc_folio(): the subpool is at its
    maximum because two threads allocate in the same huge page at once (RFC v2 cover-letter
    TODO #3, the January 2026 race on the work branch). Not reached under upstream, whose work
    branch serialises them with hugetlb_fault_mutex_lock.""",
    reached="a huge page is allocated for a file with 2M/1G pages under a revision without "
    "hugetlb_fault_mutex serialisation (rfc-v2, fixed, prealloc): the first access, fallocate or "
    "conversion of an unallocated huge page. upstream serialises allocations and never reaches "
    "it.",
)
P_ALLOC_HUGETLB = faults.declare(
    "alloc_hugetlb_folio", {"ENOMEM"},
    """hugetlb_alloc_folio() finds no free huge page in the pool (the pages are put back to the
    subpool and -ENOMEM is returned).""",
    reached="a huge page is allocated for a file with 2M/1G pages: the first guest or host access, "
    "fallocate or conversion of an unallocated huge page.",
)


@dataclass
class HugePool:
    """One hstate: counters exactly as sysfs reports them."""

    name: str
    nr_pages: int  # 4K pages per huge page
    total: int
    free: int
    resv: int = 0
    #: live subpools (not yet given back): their ``rsv_hpages`` are part of ``resv``
    subpools: list[Subpool] = field(default_factory=list, repr=False, compare=False)

    def stats(self) -> dict[str, int]:
        return {"total": self.total, "free": self.free, "resv": self.resv}

    def hugetlb_acct_memory(self, delta: int) -> None:
        """Reserve (delta > 0) or release reservations; ENOMEM when too few unreserved pages."""
        if delta > 0 and self.free - self.resv < delta:
            raise oserror(ENOMEM, f"hugetlb_acct_memory: {delta} {self.name} pages wanted, "
                                  f"{self.free - self.resv} free and unreserved")
        self.resv += delta


class Subpool:
    """``struct hugepage_subpool`` with ``max_hpages == min_hpages`` (guest_memfd's use).

    ``count`` is the number of handles (the inode's); the subpool and the reservations it still
    holds are given back only once it is free: no handle and no page in use
    (``subpool_is_free`` / ``unlock_or_release_subpool``). A page still in use when the inode
    goes (pinned, or held by the TDX module) keeps the subpool and its reservations alive."""

    def __init__(self, pool: HugePool, hpages: int) -> None:
        self.pool = pool
        self.max_hpages = hpages
        self.min_hpages = hpages
        self.used_hpages = 0
        self.rsv_hpages = 0
        self.count = 1
        self.alive = True

    @classmethod
    def new(cls, pool: HugePool, hpages: int) -> Subpool:
        """Mirrors ``hugepage_new_subpool``; may fail with ENOMEM."""
        if (f := P_NEW_SUBPOOL.hit(page_size=pool.name, nr_hpages=hpages)) is not None:
            raise oserror(ENOMEM, f"hugepage_new_subpool: injected {f.kind.name}")
        pool.hugetlb_acct_memory(hpages)
        sp = cls(pool, hpages)
        sp.rsv_hpages = hpages
        pool.subpools.append(sp)
        return sp

    def get_page(self, racy: bool = True) -> None:
        """``hugepage_subpool_get_pages(spool, 1)`` + ``alloc_hugetlb_folio`` using the
        reservation; may fail with ENOMEM (nothing changed then). ``racy=False``: allocations
        in one huge page are serialised (the work branch's ``hugetlb_fault_mutex_lock``), so no
        concurrent fault can take the subpool's last page: the point is not reached."""
        f = P_SUBPOOL_GET.hit(page_size=self.pool.name) if racy else None
        if f is not None or self.used_hpages + 1 > self.max_hpages:
            why = "injected" if f is not None else "subpool at its maximum"
            raise oserror(ENOMEM, f"hugepage_subpool_get_pages: {why}")
        if (f := P_ALLOC_HUGETLB.hit(page_size=self.pool.name)) is not None or self.pool.free < 1:
            raise oserror(ENOMEM, "alloc_hugetlb_folio: no free huge page")
        self.used_hpages += 1
        if self.rsv_hpages > 0:
            self.rsv_hpages -= 1
            self.pool.resv -= 1
        self.pool.free -= 1

    def put_page(self) -> None:
        """Mirrors ``free_huge_folio`` -> ``hugepage_subpool_put_pages(spool, 1)``: the page goes
        back to the pool; below the minimum its reservation is restored (``restore_reserve``);
        then ``unlock_or_release_subpool``. Cannot fail."""
        self.pool.free += 1
        self.used_hpages -= 1
        if self.used_hpages < self.min_hpages:
            restore = self.rsv_hpages + 1 <= self.min_hpages
            self.rsv_hpages = min(self.rsv_hpages + 1, self.min_hpages)
            if restore:
                self.pool.resv += 1
        self._release_if_free()

    def release(self) -> None:
        """Mirrors ``hugepage_put_subpool`` at inode teardown: drop the inode's handle; the
        reservations go back only if no page is in use any more. Cannot fail."""
        self.count -= 1
        self._release_if_free()

    def _release_if_free(self) -> None:
        """Mirrors ``unlock_or_release_subpool``: once ``subpool_is_free`` (no handle, no page
        in use), ``hugetlb_acct_memory(h, -min_hpages)`` and the subpool is freed."""
        if self.alive and self.count == 0 and self.used_hpages == 0:
            self.pool.hugetlb_acct_memory(-self.min_hpages)
            self.rsv_hpages = 0
            self.alive = False
            self.pool.subpools.remove(self)
