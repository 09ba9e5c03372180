"""Hypothesis profiles for the whole suite (the fuzz and property tests take their example
counts from it; a test that sets max_examples itself keeps its own).

- ``dev`` (the default): a few hundred examples over all the fuzz tests, for local runs;
- ``ci``: at least 10,000 over the fuzz tests (tests/faults/test_faults_grammar_props.py and
  test_fuzz_inputs.py), loaded when the environment has ``CI=true`` (or with
  ``--hypothesis-profile=ci``). ``python benchmarks/bench_fuzz.py`` times it.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

#: What the suite needs beyond pytest (the project's own dependencies and its `test` extra): a
#: Python without them gets one line saying how to install them, not three collection errors.
_MISSING = [name for name in ("faker", "hypothesis", "xdist") if importlib.util.find_spec(name) is None]
if _MISSING:
    raise pytest.UsageError(f"tests need {', '.join(_MISSING)}, which this Python ({sys.executable}) lacks: "
                            "install the project with its test extra, pip install -e '.[test]'")

from hypothesis import HealthCheck, settings  # noqa: E402

#: Examples per fuzz test in each profile (the fuzz tests count: see FUZZ_TESTS in bench_fuzz.py).
FUZZ_EXAMPLES = {"dev": 60, "ci": 800}

for _name, _n in FUZZ_EXAMPLES.items():
    settings.register_profile(
        _name,
        max_examples=_n,
        deadline=None,  # the fuzz tests bound the time of one input themselves
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=_name == "ci",  # a CI failure prints the @reproduce_failure line
    )
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The suite's pytester runs (in-process and subprocess) run their tests in file order: they
    assert on ids and output order. pytest-randomly is installed (the test extra) for the tests
    that check it, which turn it back on with ``-p randomly`` (a later -p wins)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")
    return pytester
