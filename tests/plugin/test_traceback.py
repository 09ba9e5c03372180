"""Traceback hygiene: a failure with an error the library raises on purpose stops at the
user's line; --gmem-full-trace (and pytest's --fulltrace) shows the library's frames; a bug
inside the library (an unexpected exception there) always shows them."""

from __future__ import annotations

import pytest

USER_TEST = """
import errno
import pytest

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.enomem("guestmem_hugetlb_stash_metadata")
def test_split(gmem):
    gmem.guest_write(0, b"x")
    gmem.convert_shared(0, "4K")

def test_model_bug(gmem, monkeypatch):
    monkeypatch.setattr(gmem, "_convert", None)  # the model's own call now raises TypeError
    gmem.convert_shared(0, "4K")
"""


def _library_lines(result: pytest.RunResult, test: str) -> list[str]:
    """Lines of ``test``'s failure section that point into the library's files."""
    text = result.stdout.str()
    start = text.index(f"_ {test} _")
    end = text.find("\n___", start + 1)
    section = text[start:] if end < 0 else text[start:end]
    return [line for line in section.splitlines() if "pytest_gmem/model/" in line or "faults/" in line]


def test_errors_raised_on_purpose_stop_at_the_users_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=2)
    assert _library_lines(result, "test_split") == []
    result.stdout.fnmatch_lines(["*>       gmem.convert_shared(0, \"4K\")", "E       *ConversionError: [[]Errno 12[]]*",
                                 "test_*.py:8: ConversionError"])
    # a TypeError raised inside the model is a model bug: its frames are the point
    assert any("guest_memfd.py" in line for line in _library_lines(result, "test_model_bug"))


@pytest.mark.parametrize("flag", ["--gmem-full-trace", "--fulltrace"])
def test_full_trace_shows_the_library_frames(pytester: pytest.Pytester, flag: str) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest("-p", "no:randomly", flag, "-k", "test_split")
    result.assert_outcomes(failed=1, deselected=1)
    lines = _library_lines(result, "test_split")
    assert any("conversion.py" in line for line in lines), result.stdout.str()


def test_a_full_trace_run_does_not_leave_frames_hidden_for_the_next_session(pytester: pytest.Pytester) -> None:
    # pytester runs sessions in one process: the hidden marks must follow each session's option
    pytester.makepyfile(USER_TEST)
    pytester.runpytest("-p", "no:randomly", "-k", "test_split")
    result = pytester.runpytest("-p", "no:randomly", "--gmem-full-trace", "-k", "test_split")
    assert any("conversion.py" in line for line in _library_lines(result, "test_split"))
