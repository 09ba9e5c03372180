"""With pytest-randomly active and no gmem seed given, --randomly-seed is the gmem seed: one
seed reproduces both the test order and the faults."""

from __future__ import annotations

import re

import pytest

SUITE = """
import pytest

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault("kvm_gmem_shareability_store[phase=forward]=50%enomem@times=inf")
def test_coin(gmem, faults):
    outcomes = []
    for i in range(16):
        try:
            gmem.convert_shared(i << 12, "4K")
            outcomes.append("ok")
        except OSError:
            outcomes.append("ENOMEM")
    print("OUTCOMES", " ".join(outcomes))
"""


def _seed_line(result: pytest.RunResult) -> str:
    return next(line for line in result.stdout.lines if line.startswith("gmem: --gmem-seed="))


def _outcomes(result: pytest.RunResult) -> str:
    return result.stdout.str().split("OUTCOMES", 1)[1].splitlines()[0]


def test_randomly_seed_becomes_the_gmem_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    first = pytester.runpytest("-p", "randomly", "--randomly-seed=1234", "-s")
    first.assert_outcomes(passed=1)
    assert _seed_line(first) == "gmem: --gmem-seed=1234 (from pytest-randomly's --randomly-seed)"
    again = pytester.runpytest("-p", "randomly", "--randomly-seed=1234", "-s")
    assert _outcomes(again) == _outcomes(first)
    plain = pytester.runpytest("-p", "no:randomly", "--gmem-seed=1234", "-s")
    assert _outcomes(plain) == _outcomes(first), "the same seed, with or without pytest-randomly"


def test_an_explicit_gmem_seed_wins_over_randomly(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("-p", "randomly", "--randomly-seed=1234", "--gmem-seed=99")
    assert _seed_line(result) == "gmem: --gmem-seed=99"
    monkeypatch.setenv("GMEM_SEED", "7")
    result = pytester.runpytest("-p", "randomly", "--randomly-seed=1234")
    assert _seed_line(result) == "gmem: --gmem-seed=7"


def test_randomly_without_a_seed_still_gives_one_seed_for_both(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("-p", "randomly")
    randomly = re.search(r"Using --randomly-seed=(\d+)", result.stdout.str())
    assert randomly is not None
    assert _seed_line(result) == f"gmem: --gmem-seed={randomly.group(1)} (from pytest-randomly's --randomly-seed)"
