"""The per-revision table of outcomes, from the scenarios' records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .spec import OUTCOMES


# --- tables -----------------------------------------------------------------------------------
def tally(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per revision (and depth): scenarios and their outcomes, from sweep records (dicts with
    ``revision``, ``depth``, ``outcome``). Rows keyed ``"rfc-v2"`` or ``"rfc-v2 depth 2"``."""
    rows: dict[str, dict[str, Any]] = {}
    for rec in records:
        rev = str(rec.get("revision") or "?")
        depth = int(rec.get("depth") or 1)
        key = rev if depth == 1 else f"{rev} depth {depth}"
        row = rows.setdefault(key, {"revision": rev, "depth": depth, "scenarios": 0,
                                    "outcomes": dict.fromkeys(OUTCOMES, 0)})
        row["scenarios"] += 1
        out = str(rec.get("outcome"))
        row["outcomes"][out] = row["outcomes"].get(out, 0) + 1
    return rows
