"""Kernel revisions the model can follow (``Host(revision=...)``): the records live in
:mod:`pytest_gmem.revisions` (one place for the model, the plugin and the comparison); the
model's own bounds on where the kernel would spin for ever are here."""

from __future__ import annotations

from ..revisions import DEFAULT_REVISION, REVISIONS, Revision, get_revision

__all__ = ["DEFAULT_REVISION", "KERNEL_BUG_SPIN_LIMIT", "REVISIONS", "SPIN_RETRY_LIMIT",
           "UNDERFLOW_STEP_LIMIT", "Revision", "get_revision"]

#: where the kernel would spin forever, the model gives up after this many iterations
KERNEL_BUG_SPIN_LIMIT = 10_000
#: ``fixed`` / ``prealloc``: spins on a speculative reference before reporting EAGAIN
SPIN_RETRY_LIMIT = 64
#: rollback-loop iterations past an unsigned wrap before the model reports the underflow
UNDERFLOW_STEP_LIMIT = 1_000
