"""Sparse page contents, keyed by file index (folios never move, so the index names the page).

A page with no entry reads zeros (zero on first use). Whole pages of one byte value are stored
as a fill run, other pages as their 4096 bytes: memory grows with what was written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .intervals import IntervalMap
from .units import PAGE_SHIFT, PAGE_SIZE

ZERO_PAGE = bytes(PAGE_SIZE)


def digest_items(items: Iterable[tuple[int, int, int | bytes]]) -> str:
    """A short digest of content runs ``(start, end, fill byte or page bytes)``."""
    h = hashlib.blake2b(digest_size=8)
    for s, e, v in items:
        h.update(f"{s}:{e}:".encode())
        h.update(bytes([v]) if isinstance(v, int) else v)
    return h.hexdigest()


class Contents:
    """Per-inode page data."""

    def __init__(self) -> None:
        self.pages: IntervalMap[int | bytes] = IntervalMap()

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        first = offset >> PAGE_SHIFT
        last = (offset + length + PAGE_SIZE - 1) >> PAGE_SHIFT
        for s, e, v in self.pages.items(first, last):
            lo = max(s << PAGE_SHIFT, offset)
            hi = min(e << PAGE_SHIFT, offset + length)
            if isinstance(v, int):
                if v:
                    out[lo - offset:hi - offset] = bytes([v]) * (hi - lo)
            else:
                # single-page data (possibly repeated over equal neighbours)
                for page in range(lo >> PAGE_SHIFT, ((hi - 1) >> PAGE_SHIFT) + 1):
                    plo = max(page << PAGE_SHIFT, lo)
                    phi = min((page + 1) << PAGE_SHIFT, hi)
                    out[plo - offset:phi - offset] = v[plo - (page << PAGE_SHIFT):phi - (page << PAGE_SHIFT)]
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        if not data:
            return
        end = offset + len(data)
        if data.count(data[:1]) == len(data):
            self.fill(offset, len(data), data[0])
            return
        page = offset >> PAGE_SHIFT
        while (page << PAGE_SHIFT) < end:
            base = page << PAGE_SHIFT
            lo, hi = max(base, offset), min(base + PAGE_SIZE, end)
            chunk = data[lo - offset:hi - offset]
            if hi - lo == PAGE_SIZE:
                self._set_page(page, chunk)
            else:
                cur = bytearray(self.read(base, PAGE_SIZE))
                cur[lo - base:hi - base] = chunk
                self._set_page(page, bytes(cur))
            page += 1

    def fill(self, offset: int, length: int, byte: int) -> None:
        """memset: whole pages become a fill run, partial edges are merged page by page."""
        end = offset + length
        first_full = (offset + PAGE_SIZE - 1) >> PAGE_SHIFT
        last_full = end >> PAGE_SHIFT
        if first_full < last_full:
            self._assign(first_full, last_full, byte)
        for lo, hi in ((offset, min(end, first_full << PAGE_SHIFT)),
                       (max(offset, last_full << PAGE_SHIFT), end)):
            if lo < hi and not (first_full <= lo >> PAGE_SHIFT < last_full):
                base = (lo >> PAGE_SHIFT) << PAGE_SHIFT
                cur = bytearray(self.read(base, PAGE_SIZE))
                cur[lo - base:hi - base] = bytes([byte]) * (hi - lo)
                self._set_page(lo >> PAGE_SHIFT, bytes(cur))

    def _set_page(self, page: int, data: bytes) -> None:
        if data.count(data[:1]) == PAGE_SIZE:
            self._assign(page, page + 1, data[0])
        else:
            self.pages.assign(page, page + 1, data)

    def _assign(self, start: int, end: int, byte: int) -> None:
        if byte == 0:
            self.pages.clear(start, end)
        else:
            self.pages.assign(start, end, byte)

    def zero(self, start: int, end: int) -> None:
        """Pages ``[start, end)`` read zeros again (punch hole, truncate, TDX clear)."""
        self.pages.clear(start, end)

    def digest(self, start: int = 0, end: int | None = None) -> str:
        return digest_items(self.pages.items() if end is None else self.pages.items(start, end))

    def written_ranges(self) -> list[tuple[int, int]]:
        return [(s, e) for s, e, _ in self.pages.items()]
