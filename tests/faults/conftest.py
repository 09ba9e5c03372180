"""Shared fixtures for the fault-engine tests (pytest-free engine, plain pytest tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import faults
from faults import points


@pytest.fixture(autouse=True)
def no_leaked_armings() -> Iterator[None]:
    """Every test must leave the engine as it found it: nothing armed or recording."""
    before = points._ACTIVE
    yield
    assert points._ACTIVE == before, "a test left an arming or a recording scope behind"


@pytest.fixture
def sc() -> Iterator[faults.Scope]:
    """A fresh recording scope, isolated from anything armed outside it."""
    with faults.scope(inherit=False, record=True, seed=1234) as s:
        yield s
