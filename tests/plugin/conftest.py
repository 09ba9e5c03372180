"""Helpers for the plugin's own tests (pytester runs of small downstream suites)."""

from __future__ import annotations

import pytest

# pytester's in-process runs drop the modules a run imported; import the heavy ones once here
# so that each inner run does not import (and assertion-rewrite) them again.
for _name in ("faker", "faker.config", "hypothesis.internal.observability", "pytest_gmem", "faults.grammar"):
    try:
        __import__(_name)
    except ImportError:  # pragma: no cover - an optional plugin that is not installed
        pass

#: A conftest that makes ``gmem_host`` a scripted host through the plugin's own hook, so the
#: after-test check can be driven exactly: ``gmem_host.warn(...)`` adds a WARN record,
#: ``gmem_host.break_invariant(...)`` makes ``check()`` fail.
FAKE_HOST_CONFTEST = """
from dataclasses import dataclass

class InvariantViolation(AssertionError):
    def __init__(self, violations):
        super().__init__("; ".join(violations))
        self.violations = violations

@dataclass
class Warn:
    where: str
    message: str
    fault: object = None

class FakeHost:
    def __init__(self, revision):
        self.revision = revision
        self.warnings = []
        self.broken = []
        self.closed = False
    def warn(self, where, message):
        self.warnings.append(Warn(where, message))
    def break_invariant(self, text):
        self.broken.append(text)
    def check(self):
        if self.broken:
            raise InvariantViolation(list(self.broken))
    def state_map(self):
        return "FAKE STATE MAP"
    def close(self):
        self.closed = True
    def create_vm(self, vm_type="sw_protected"):
        return self

def pytest_gmem_make_host(revision):
    return FakeHost(revision)
"""


@pytest.fixture
def fake_host(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(FAKE_HOST_CONFTEST)
    return pytester
