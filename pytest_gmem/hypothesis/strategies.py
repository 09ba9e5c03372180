"""Hypothesis strategies for the state machine's arguments, each printing as Python a user can
paste: offsets and sizes as hex ints, faults as ``--gmem-fault`` text (docs/faults-grammar.md).
"""

from __future__ import annotations

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


def spans(geo: Geometry, invalid: bool = False) -> st.SearchStrategy[tuple[Hex, Hex]]:
    """``(offset, size)`` inside the file: a few 4K pages, whole huge pages, or both, cut at the
    end of the file (shrinks towards ``(0x0, 0x1000)``). ``invalid``: now and then a range the
    kernel refuses (misaligned, past the end), for the EINVAL paths."""

    def build(t: tuple[int, int, int]) -> tuple[Hex, Hex]:
        off, nu, np = t
        length = nu * geo.unit + np * PAGE or PAGE
        return Hex(off), Hex(min(length, geo.size - off))

    good = st.tuples(offsets(geo), st.integers(0, geo.units),
                     st.sampled_from(sorted({1, 2, 3, geo.pages_per_unit // 2}))).map(build)
    if not invalid:
        return good
    bad = st.sampled_from([(Hex(0x800), Hex(PAGE)), (Hex(0), Hex(geo.size + PAGE)),
                           (Hex(geo.size - PAGE), Hex(2 * PAGE)), (Hex(PAGE), Hex(0x200))])
    return st.one_of(good, good, good, good, good, good, good, good, good, bad)


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


def _arming(point: faults.PointInfo, phase: str | None) -> st.SearchStrategy[str]:
    texts = sorted(t for k in point.kinds for t in KIND_TEXTS.get(k, (k,)))
    where = f"[phase={phase}]" if phase else ""
    return st.tuples(st.sampled_from(texts), st.integers(1, 4)).map(
        lambda t: f"{point.name}{where}={t[0]}@nth={t[1]}")


def fault_specs() -> st.SearchStrategy[str]:
    """One fault in the ``--gmem-fault`` grammar (``point=KIND@nth=N``: any declared point, a
    kind it allows, its N-th hit), and a third of the time a second one for the undo paths only
    (``;point2[phase=rollback]=KIND@nth=M``): a failure inside the rollback of the first."""
    points = model_points()
    first = st.one_of(*[_arming(p, None) for p in points])
    second = st.one_of(*[_arming(p, "rollback") for p in points])
    return st.one_of(first, first, st.tuples(first, second).map(";".join))
