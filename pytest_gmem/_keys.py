"""Stash keys and constants shared by the plugin's glue modules (``plugin``,
``plugin_sweep``, ``plugin_coverage``, ``plugin_report``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from . import config as cfg
from .testrun import TestRun

if TYPE_CHECKING:
    from .sweep import ItemState

SETTINGS = pytest.StashKey[cfg.Settings]()
SESSION_FAULTS = pytest.StashKey[list[cfg.ArmRequest]]()
RUN = pytest.StashKey[TestRun]()
PARAMS = pytest.StashKey[cfg.GmemParams]()
PHASES = pytest.StashKey[dict[str, tuple[str, bool]]]()
SWEEP: pytest.StashKey[ItemState] = pytest.StashKey()
#: A bad fault_sweep marker: the test's own item fails its setup with this message.
SWEEP_ERROR = pytest.StashKey[str]()
MODEL_FIXTURES = frozenset({"gmem_host", "gmem_vm", "gmem", "gmem_factory"})


def known_revisions() -> Sequence[str]:
    """The revision names, from their registry (the model is not imported for them)."""
    return cfg.FALLBACK_REVISIONS
