"""Sizes: PAGE_SIZE, huge page sizes, and parsing of "4K" / "2M" / "1G" strings."""

from __future__ import annotations

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
U64_MASK = (1 << 64) - 1

#: pages per folio for each supported backing page size
PAGES_PER: dict[str, int] = {"4K": 1, "2M": 512, "1G": 262144}
ORDER_OF: dict[int, int] = {1: 0, 512: 9, 262144: 18}
_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: int | str, what: str = "size") -> int:
    """Bytes from an int or a string such as ``"4K"``, ``"2M"``, ``"8G"``, ``"1T"``, ``"0x1000"``."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be bytes or a size string, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("B").removesuffix("I")
        try:
            if text and text[-1] in _SUFFIX:
                return int(float(text[:-1]) * _SUFFIX[text[-1]])
            return int(text, 0)
        except ValueError:
            pass
    raise ValueError(f"{what} {value!r} is not a size (bytes, or a string like '4K', '2M', '1G')")


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
