"""Sizes: PAGE_SIZE, huge page sizes; size strings ("4K", "2M", "1G") are read by
:func:`pytest_gmem.sizes.parse_size`, the one grammar of the plugin and the model."""

from __future__ import annotations

from ..sizes import parse_size as parse_size  # re-exported: the model's modules take it from here

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
U64_MASK = (1 << 64) - 1

#: pages per folio for each supported backing page size
PAGES_PER: dict[str, int] = {"4K": 1, "2M": 512, "1G": 262144}
ORDER_OF: dict[int, int] = {1: 0, 512: 9, 262144: 18}


def page_size_name(nr_pages: int) -> str:
    """'4K', '2M' or '1G' for a folio of ``nr_pages`` pages."""
    for name, n in PAGES_PER.items():
        if n == nr_pages:
            return name
    return f"{nr_pages * PAGE_SIZE}B"


def fmt_bytes(n: int) -> str:
    for unit, size in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def as_offset(value: object, what: str) -> int:
    """An offset argument of a public operation: an int (bytes). TypeError naming the bad value
    and the argument otherwise (negative values are left to the kernel's own checks)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")
    return value


def as_data(value: object, what: str) -> bytes:
    """Bytes to write: bytes, bytearray or memoryview; TypeError naming the value otherwise."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, got {type(value).__name__} {value!r:.40}")
    return bytes(value)
