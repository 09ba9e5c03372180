"""Stash keys and constants shared by the plugin's glue modules (``plugin``,
``plugin_sweep``, ``plugin_coverage``, ``plugin_report``)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
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
    """The model's revision names (without importing the model at plugin load when possible)."""
    revisions = getattr(import_module("pytest_gmem.model"), "REVISIONS", None)
    return tuple(revisions) if revisions else cfg.FALLBACK_REVISIONS
