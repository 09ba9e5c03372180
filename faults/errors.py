"""Errors raised by the fault engine; each names the bad value and offers a close match."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FaultError(ValueError):
    """Base class of every error the engine raises for bad input."""


class UnknownPoint(FaultError):
    """A point name or glob that matches no declared fault point."""


class KindNotAllowed(FaultError):
    """A kind the point cannot realistically produce (its allow-list says no)."""


class UnknownKind(FaultError):
    """A kind name the engine does not know."""


class SpecSyntaxError(FaultError):
    """A syntax error in the text grammar; ``.pos`` is the offending character's index."""

    def __init__(self, message: str, text: str, pos: int, source: str | None = None) -> None:
        self.text = text
        self.pos = pos
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"{message} at character {pos + 1}{where}:\n{caret_lines(text, pos)}")


def caret_lines(text: str, pos: int) -> str:
    """The line of ``text`` holding ``pos`` and a caret under it (tabs kept aligned)."""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start:] if end < 0 else text[start:end]
    pad = "".join(c if c == "\t" else " " for c in line[: pos - start])
    return f"  {line}\n  {pad}^"


def suggest(word: str, candidates: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest candidate, or ''."""
    pool = list(candidates)
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[w] for w in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.5)]
    return f" (did you mean {close[0]!r}?)" if close else ""
