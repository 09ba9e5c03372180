"""Stash keys and constants shared by the plugin's glue modules (``plugin``,
``plugin_sweep``, ``plugin_coverage``, ``plugin_report``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from . import config as cfg
from .testrun import TestRun

if TYPE_CHECKING:
    from .sweep import ItemState

SETTINGS = pytest.StashKey[cfg.Settings]()
SESSION_FAULTS = pytest.StashKey[list[cfg.ArmRequest]]()
RUN = pytest.StashKey[TestRun]()
#: A test that uses nothing of the plugin (set at collection) and, while it runs, its run: only
#: its scope and the root-scope leak check, kept here (not under RUN) until it needs a record.
BYSTANDER = pytest.StashKey[bool]()
LIGHT = pytest.StashKey[TestRun]()
PARAMS = pytest.StashKey[cfg.GmemParams]()
PHASES = pytest.StashKey[dict[str, tuple[str, bool]]]()
SWEEP: pytest.StashKey[ItemState] = pytest.StashKey()
#: A bad fault_sweep marker: the test's own item fails its setup with this message.
SWEEP_ERROR = pytest.StashKey[str]()


@dataclass(frozen=True)
class ItemExtras:
    """What a mode's plugin object (the fault sweep: ``plugin_sweep.Sweeps``) asks of the core
    hooks for an item it made, so that they need not know the mode: the node id the item's seed
    comes from, faults armed with its markers' at the start of the body, the revision it runs
    under, options its reproduce line needs, whether it calls the public hooks (a census run does
    not), and fields its record gains at teardown."""

    seed_nodeid: str | None = None
    requests: tuple[cfg.ArmRequest, ...] = ()
    revision: str | None = None
    revision_source: str = ""
    reproduce: str = ""
    public: bool = True
    record: Callable[[TestRun], Mapping[str, Any]] | None = None


EXTRAS = pytest.StashKey[ItemExtras]()
NO_EXTRAS = ItemExtras()


def seed_nodeid(item: pytest.Item) -> str:
    """The node id a test's seed comes from: its own, or the swept test's (same faker data)."""
    return item.stash.get(EXTRAS, NO_EXTRAS).seed_nodeid or item.nodeid


MODEL_FIXTURES = frozenset({"gmem_host", "gmem_vm", "gmem", "gmem_factory"})


def revision_of(item: pytest.Item) -> str:
    """The revision an item runs under (its marker, a sweep's scenario, the session's)."""
    params = item.stash.get(PARAMS, None)
    return (params.revision if params else None) or item.config.stash[SETTINGS].revision


def is_skip(exc: BaseException) -> bool:
    """``pytest.skip()`` / ``pytest.xfail()``: the test chose not to go on, it did not fail."""
    return isinstance(exc, (pytest.skip.Exception, pytest.xfail.Exception))


def known_revisions() -> Sequence[str]:
    """The revision names, from their registry (the model is not imported for them)."""
    return cfg.FALLBACK_REVISIONS
