"""The one size grammar of pytest-gmem: the ``gmem`` marker, ``gmem_factory``, the Faker
provider and every size argument of the model (``create_guest_memfd``, conversions,
``fallocate``, ``Host(memory=...)``) read sizes with :func:`parse_size`.

Imports nothing from the model, so the plugin can check a marker's size without loading it.

A size is either an ``int`` (bytes) or a string:

==========================  ============================================================
``"4096"``, ``"0x1000"``    bytes, in decimal or ``0x`` hex
``"4K"`` ``"2M"`` ``"1G"``   a whole number times a unit K, M, G or T; units are powers of
``"1T"``                    1024 whatever the spelling: ``"2M"``, ``"2m"``, ``"2MB"`` and
                            ``"2MiB"`` all mean 2097152
``"1.5M"`` ``"0.5G"``        a decimal fraction with a unit, only when it comes to whole 4K
                            pages (``"1.5M"`` is 1536K); ``"1.1M"`` is refused
==========================  ============================================================

Space around the value is ignored; space inside it (``"2 M"``), signs, exponents and units
other than these are refused. Whether a size fits where it is used (positive, a multiple of
4K or of the page size) is the caller's check, as it is the kernel's.
"""

from __future__ import annotations

import re
from decimal import Decimal

PAGE_SIZE = 4096
#: Binary units: K, M, G, T (read case-insensitively, with an optional ``B`` or ``iB``).
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
#: What every size error says it expected.
EXPECTED = (
    "expected bytes (an int, '4096' or '0x1000') or a number with a unit K, M, G or T "
    "(powers of 1024; '2M', '2MB', '2MiB' and '2m' are the same), e.g. '4K', '2M', '1G'"
)

_SIZE = re.compile(r"(?P<num>\d+(?:\.\d+)?)(?P<unit>[KMGT])(?:I?B)?|(?P<bytes>\d+|0X[0-9A-F]+)", re.IGNORECASE)


def parse_size(value: object, what: str = "size") -> int:
    """Bytes from an ``int`` or a size string (see the module docstring). ValueError for a
    string outside the grammar and TypeError for anything else, both naming ``what`` and
    the value; a caller adds where the value came from ("from marker gmem on test_x")."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{what} must be bytes (an int) or a size string such as '2M', got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"invalid {what} {value!r}: {EXPECTED}")
    if match["bytes"] is not None:
        text = match["bytes"]
        return int(text[2:], 16) if text[:2] in ("0x", "0X") else int(text)  # "0100" is 100
    exact = Decimal(match["num"]) * UNITS[match["unit"].upper()]
    if "." in match["num"] and (exact != exact.to_integral_value() or int(exact) % PAGE_SIZE):
        raise ValueError(
            f"invalid {what} {value!r}: a fraction is taken only when it comes to whole 4K pages "
            f"('1.5M' is 1536K); write it in a smaller unit or in bytes"
        )
    return int(exact)
