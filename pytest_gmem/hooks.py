"""Hooks the gmem plugin offers to other plugins and to ``conftest.py`` files.

Implement any of them in a ``conftest.py`` or a plugin; pytest passes only the arguments an
implementation names. The plugin implements ``pytest_gmem_make_host`` itself (``trylast``),
so an implementation of yours replaces the default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Mapping

    import faults


@pytest.hookspec(firstresult=True)
def pytest_gmem_make_host(item: pytest.Item, config: pytest.Config, revision: str, hugetlb: Mapping[str, int]) -> Any:
    """Return the ``Host`` for a test's ``gmem_host`` fixture (and ``gmem_factory.host()``).

    ``revision`` is the resolved revision (marker, then ``--gmem-revision``...), ``hugetlb`` the
    pools (the marker's, else ``{"2M": 64, "1G": 4}`` grown to fit the marker's file). The
    first non-None result wins. Example, a bigger 1G pool for the tests of one directory::

        # conftest.py
        from pytest_gmem import Host

        def pytest_gmem_make_host(item, revision, hugetlb):
            if item.get_closest_marker("big_pool"):
                return Host(hugetlb={"2M": 1024, "1G": 16}, revision=revision)
            return None   # the plugin's default
    """


@pytest.hookspec()
def pytest_gmem_fault_fired(item: pytest.Item, fired: faults.Fired) -> None:
    """Called at the moment a fault fires during ``item`` (inside the model's call stack).

    ``fired.label()`` is ``point:KIND#nth``; ``fired.context`` what the point passed. Example,
    count ENOMEMs per point across the session::

        # conftest.py
        import collections
        FIRED = collections.Counter()

        def pytest_gmem_fault_fired(fired):
            FIRED[fired.point] += 1

    An exception raised here propagates into the model at the fault point: don't. The
    collection-time census runs of fault sweeps do not call it.
    """


@pytest.hookspec()
def pytest_gmem_test_outcome(item: pytest.Item, outcome: str, record: dict[str, Any]) -> None:
    """Called once per test after its teardown, on the process that ran it (not for the
    collection-time census runs of fault sweeps).

    ``outcome`` is one of passed, failed, error, skipped, xfailed, xpassed; ``record`` the
    builtins the plugin reports for the test (keys ``armed``, ``fired``, ``unfired``,
    ``reached``, ``problems``, ``seed``, ``reproduce``). Example, collect the reproduce lines
    of failing tests that had a fault fire::

        # conftest.py
        def pytest_gmem_test_outcome(outcome, record):
            if outcome == "failed" and record["fired"]:
                with open("to-reproduce.txt", "a") as fh:
                    fh.write(record["reproduce"] + "\\n")
    """
