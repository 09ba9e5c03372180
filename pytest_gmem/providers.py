"""A Faker provider of valid guest_memfd offsets, ranges and conversion workloads.

    from pytest_gmem.providers import GmemProvider

    def test_random_conversions(gmem, faker):
        faker.add_provider(GmemProvider)
        for op in faker.gmem_workload(gmem, steps=20):
            op.apply(gmem)            # convert_shared / convert_private / punch_hole

Everything is drawn from the Faker instance's own random generator, so with pytest-gmem the
``faker`` fixture is seeded from ``--gmem-seed`` and the test's node id (the plugin provides
``faker_seed``), and a failing workload comes back with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faker.providers import BaseProvider

from .sizes import parse_size

PAGE = 4096
OPERATIONS = ("convert_shared", "convert_private", "punch_hole")


def to_bytes(value: int | str, what: str = "size") -> int:
    """``4096``, ``"4K"``, ``"2M"``, ``"1G"`` -> bytes, in the one size grammar of pytest-gmem
    (:mod:`pytest_gmem.sizes`); ValueError / TypeError naming ``what`` and the value."""
    return parse_size(value, what)


def _step(value: int | str, what: str) -> int:
    """An alignment: a positive size."""
    step = to_bytes(value, what)
    if step <= 0:
        raise ValueError(f"{what} must be a positive size such as 4096 or '2M', got {value!r}")
    return step


def file_size(gmem_or_size: Any) -> int:
    """The size of a GuestMemfd (its ``size``), or a size given directly."""
    size = getattr(gmem_or_size, "size", gmem_or_size)
    return to_bytes(size, "file size")


@dataclass(frozen=True)
class Op:
    """One step of a workload: ``gmem.<name>(offset, length)``."""

    name: str
    offset: int
    length: int

    def apply(self, gmem: Any) -> Any:
        return getattr(gmem, self.name)(self.offset, self.length)

    def __str__(self) -> str:
        return f"{self.name}({self.offset:#x}, {self.length:#x})"


class GmemProvider(BaseProvider):
    """Offsets, ranges and workloads that are valid for a given file (aligned, inside it)."""

    def gmem_offset(self, gmem_or_size: Any, align: int | str = PAGE) -> int:
        """An offset inside the file, a multiple of ``align`` (default 4K)."""
        step = _step(align, "align")
        slots = file_size(gmem_or_size) // step
        if slots < 1:
            raise ValueError(f"a file of {file_size(gmem_or_size)} bytes has no {step}-byte aligned offset")
        offset: int = self.generator.random.randrange(slots) * step
        return offset

    def gmem_range(
        self, gmem_or_size: Any, align: int | str = PAGE, max_length: int | str | None = None
    ) -> tuple[int, int]:
        """``(offset, length)``: a non-empty range inside the file, both multiples of ``align``."""
        step = _step(align, "align")
        slots = file_size(gmem_or_size) // step
        if slots < 1:
            raise ValueError(f"a file of {file_size(gmem_or_size)} bytes has no {step}-byte aligned range")
        rnd = self.generator.random
        start = rnd.randrange(slots)
        most = slots - start
        if max_length is not None:
            most = max(1, min(most, _step(max_length, "max_length") // step))
        return start * step, rnd.randint(1, most) * step

    def gmem_huge_range(self, gmem_or_size: Any, page_size: int | str = "2M") -> tuple[int, int]:
        """A range of whole huge pages (what splits and merges folios)."""
        return self.gmem_range(gmem_or_size, align=_step(page_size, "page_size"))

    def gmem_workload(
        self,
        gmem_or_size: Any,
        steps: int = 10,
        operations: tuple[str, ...] = ("convert_shared", "convert_private"),
        align: int | str = PAGE,
        huge: int | str | None = "2M",
    ) -> list[Op]:
        """``steps`` operations on random valid ranges. About a third of the ranges are whole huge
        pages (``huge``; None or False for none), so a workload exercises split and merge as well
        as 4K conversions."""
        step = _step(align, "align")
        huge_step = None if huge is None or huge is False else _step(huge, "huge")
        ops = []
        size = file_size(gmem_or_size)
        rnd = self.generator.random
        for _ in range(steps):
            name = rnd.choice(operations)
            if huge_step is not None and size >= huge_step and rnd.random() < 1 / 3:
                offset, length = self.gmem_range(size, align=huge_step)
            else:
                offset, length = self.gmem_range(size, align=step, max_length=max(size // 4, step))
            ops.append(Op(name, offset, length))
        return ops
