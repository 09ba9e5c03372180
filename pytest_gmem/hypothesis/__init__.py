"""A Hypothesis state machine over the guest_memfd model (docs/hypothesis.md).

    from pytest_gmem.hypothesis import GmemMachine

    TestGmem = GmemMachine.TestCase                      # fixed, prealloc and upstream

    class RfcV2(GmemMachine):                            # one revision, one defect
        revisions = ("rfc-v2",)
        target = "partial-punch"

Importing this package imports Hypothesis (and the model); ``import pytest_gmem`` and the pytest
plugin never do.
"""

from __future__ import annotations

from .defects import DEFECTS, TARGETS, Defect, Finding
from .machine import GmemFailure, GmemMachine, MachineStats
from .strategies import GEOMETRIES, Hex

__all__ = ["DEFECTS", "GEOMETRIES", "TARGETS", "Defect", "Finding", "GmemFailure", "GmemMachine", "Hex",
           "MachineStats"]
