"""Traceback hygiene: a failure report stops at the user's line.

When a test fails with an error the library raises on purpose (a ``GmemError`` / any
``OSError``, ``KernelBug``, ``InvariantViolation``, a ``faults`` or configuration error), the
frames of ``pytest_gmem`` and ``faults`` are dropped from the report: what the user must act on
is their own call, and the exception's message names the kernel function. Any other exception
raised inside the library (a ``TypeError``, a ``KeyError``: a bug in the model or the plugin)
keeps every frame, since then the library's frames are the point. ``--gmem-full-trace`` (or
pytest's ``--fulltrace``) keeps every frame always.
"""

from __future__ import annotations

import os
from types import TracebackType

import pytest

import faults

#: Folders whose frames are the library's own.
LIBRARY_DIRS: tuple[str, ...] = tuple(
    os.path.dirname(os.path.abspath(module_file)) + os.sep for module_file in (faults.__file__ or "", __file__)
)


def is_library_frame(path: object) -> bool:
    return os.path.abspath(str(path)).startswith(LIBRARY_DIRS)


def raised_on_purpose(exc: BaseException) -> bool:
    """An error the library means users to see (its own classes, or an OSError with an errno)."""
    if isinstance(exc, OSError):
        return True
    return any(getattr(c, "__module__", "").startswith(("pytest_gmem.", "faults.")) for c in type(exc).__mro__)


#: True while a session that hides the library's frames is configured (pytester runs several
#: sessions in one process, some with --gmem-full-trace).
_ENABLED = [False]


def hide(excinfo: pytest.ExceptionInfo[BaseException] | None) -> bool:
    """The ``__tracebackhide__`` of the library's modules (pytest calls it with the failure)."""
    return _ENABLED[-1] and (excinfo is None or raised_on_purpose(excinfo.value))


def mark_library_frames(tb: TracebackType | None) -> None:
    """Give each library module in the traceback ``tb`` a ``__tracebackhide__`` (pytest reads it
    from a frame's globals when it renders the failure), unless it has its own."""
    while tb is not None:
        g = tb.tb_frame.f_globals
        if "__tracebackhide__" not in g and is_library_frame(tb.tb_frame.f_code.co_filename):
            g["__tracebackhide__"] = hide
        tb = tb.tb_next


class TraceHider:
    """Marks the library's frames in each failing phase's traceback as hidden before pytest
    renders it, unless ``enabled`` is false (``--gmem-full-trace``). Sessions nest (pytester):
    each pushes its own setting for as long as it is configured."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        _ENABLED.append(enabled)

    def pytest_unconfigure(self) -> None:
        _ENABLED.pop()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        # a plain first implementation (it returns None: the next one makes the report), not a
        # wrapper: it runs for every phase of every test, and a wrapper is a generator each time
        if self.enabled and call.excinfo is not None:
            self.mark(call.excinfo.value)

    def mark(self, exc: BaseException) -> None:
        """Mark the library's frames of ``exc`` and of the exceptions chained to it (a batched
        sweep scenario's failure, which no ``makereport`` sees, comes here directly)."""
        if self.enabled:
            mark_library_frames(exc.__traceback__)
            for chained in _chain(exc):
                mark_library_frames(chained.__traceback__)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exceptions chained to ``exc`` (``__cause__`` / ``__context__``), at most 10 deep."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(out) < 10:
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
        if cur is not None:
            out.append(cur)
    return out
