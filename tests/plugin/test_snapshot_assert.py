"""A failing ``assert a == b`` on two snapshots shows a readable diff."""

from __future__ import annotations

import pytest


def test_snapshot_assert_shows_diff(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
        def test_x(gmem):
            gmem.fallocate(1, 0, gmem.size)
            before = gmem.snapshot()
            gmem.convert_shared(0x1000, "4K")
            assert gmem.snapshot() == before
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*gmem snapshots differ (- left, + right):*",
        "*ranges differ:*",
        "*- [[]0x0, 0x1000) private*",
        "*- [[]0x1000, 0x2000) shared*",
        "*+ [[]0x0, 0x400000) private*",
        "*folios differ:*",
        "*512 x 1-page folio(s) from 0x0, refcount 1*",
    ])
