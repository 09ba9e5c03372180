"""Hypothesis strategies for the state machine's arguments, each printing as Python a user can
paste: offsets and sizes as hex ints, faults as ``--gmem-fault`` text (docs/faults-grammar.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

import faults

PAGE = 4096
MB2 = 2 << 20
GB1 = 1 << 30


class Hex(int):
    """An int that prints in hex (``0x201000``): offsets and sizes in the printed program."""

    def __repr__(self) -> str:
        return hex(self)


@dataclass(frozen=True)
class Geometry:
    """The file a page size gets: ``units`` huge pages of ``unit`` bytes (a 4K file is laid out
    as 2M units too, so its spans cross the same boundaries)."""

    page_size: str
    unit: int
    units: int

    @property
    def size(self) -> int:
        return self.unit * self.units

    @property
    def pages_per_unit(self) -> int:
        return self.unit // PAGE


GEOMETRIES: dict[str, Geometry] = {
    "4K": Geometry("4K", MB2, 2),
    "2M": Geometry("2M", MB2, 4),
    "1G": Geometry("1G", GB1, 2),
}


def _page_choices(geo: Geometry) -> list[int]:
    p = geo.pages_per_unit
    return sorted({0, 1, 2, p // 2, p - 1})


def offsets(geo: Geometry) -> st.SearchStrategy[Hex]:
    """A 4K-aligned offset inside the file, near the places that matter: the start of a huge
    page, its first pages, its middle, its last page."""
    return st.tuples(st.integers(0, geo.units - 1), st.sampled_from(_page_choices(geo))).map(
        lambda t: Hex(t[0] * geo.unit + t[1] * PAGE))


def spans(geo: Geometry) -> st.SearchStrategy[tuple[Hex, Hex]]:
    """``(offset, size)`` inside the file: a few 4K pages, whole huge pages, or both, cut at the
    end of the file (shrinks towards ``(0x0, 0x1000)``)."""

    def build(t: tuple[int, int, int]) -> tuple[Hex, Hex]:
        off, nu, np = t
        length = nu * geo.unit + np * PAGE or PAGE
        return Hex(off), Hex(min(length, geo.size - off))

    return st.tuples(offsets(geo), st.integers(0, geo.units),
                     st.sampled_from(sorted({1, 2, 3, geo.pages_per_unit // 2}))).map(build)


#: ranges every conversion ioctl refuses with EINVAL, by name, as ``(offset, size)`` for a file
#: of ``size`` bytes (``GmemMachine.convert_invalid``)
INVALID_SPANS: dict[str, Callable[[int], tuple[int, int]]] = {
    "misaligned-offset": lambda size: (0x800, PAGE),
    "misaligned-size": lambda size: (PAGE, 0x200),
    "past-the-end": lambda size: (0, size + PAGE),
    "across-the-end": lambda size: (size - PAGE, 2 * PAGE),
    "beyond-the-end": lambda size: (size, PAGE),
}


def accesses(geo: Geometry) -> st.SearchStrategy[tuple[Hex, Hex]]:
    """``(offset, length)`` of a host access: a probe, or one that runs into the next page (past
    the end of the file from the last page)."""
    return st.tuples(offsets(geo).map(lambda o: Hex(o + 8)),
                     st.sampled_from([Hex(16), Hex(PAGE + 16)]))


def model_points() -> list[faults.PointInfo]:
    """Every fault point the model declares (``faults.catalog()``), by name."""
    import pytest_gmem.model  # noqa: F401  (declares the points)

    return sorted((p for p in faults.catalog() if p.module.startswith("pytest_gmem.")), key=lambda p: p.name)


#: the grammar's spelling of each kind a point may declare, variants the machine draws from
KIND_TEXTS: dict[str, tuple[str, ...]] = {
    "speculative_refcount": ("speculative_refcount(hold=3)", "speculative_refcount(hold=none)"),
    "extra_refcount": ("extra_refcount",),
    "tdx_error": ("tdx_error(fatal)", "tdx_error(TDX_OPERAND_BUSY)"),
}


#: the hit to fail: mostly the first (most points are hit once per operation)
NTHS = st.sampled_from((1, 1, 1, 2, 3, 4))


def _arming(point: faults.PointInfo, phase: str | None) -> st.SearchStrategy[str]:
    texts = sorted(t for k in point.kinds for t in KIND_TEXTS.get(k, (k,)))
    where = f"[phase={phase}]" if phase else ""
    return st.tuples(st.sampled_from(texts), NTHS).map(
        lambda t: f"{point.name}{where}={t[0]}@nth={t[1]}")


#: points on the conversion and truncation paths every huge page file reaches: drawn three times
#: as often as the others (the 4K allocator, creation, the pools)
HOT_POINTS = frozenset({
    "__kvm_gmem_filemap_add_folio", "filemap_remove_folio_for_restructuring", "guestmem_hugetlb_stash_metadata",
    "hugetlb_vmemmap_restore_folio", "kvm_gmem_convert_compute_work", "kvm_gmem_has_safe_refcount",
    "kvm_gmem_shareability_store",
})


def fault_specs(rollback: bool = False, tdx: bool = False) -> st.SearchStrategy[str]:
    """One fault in the ``--gmem-fault`` grammar (``point=KIND@nth=N``: a declared point, a
    kind it allows, its N-th hit); ``rollback``: followed by a second one that only the undo
    paths see (``;point2[phase=rollback]=KIND@nth=M``), a failure inside the rollback of the
    first (depth 2). ``tdx``: the TDX module's points (SEAMCALLs, the S-EPT split), else every
    other point, those of the conversion path three times as often."""
    points = [p for p in model_points() if p.module.endswith(".tdx") == tdx]
    weighted = [p for p in points for _ in range(3 if p.name in HOT_POINTS else 1)]
    first = st.one_of(*[_arming(p, None) for p in weighted])
    if not rollback:
        return first
    second = st.one_of(*[_arming(p, "rollback") for p in weighted])
    return st.tuples(first, second).map(";".join)
