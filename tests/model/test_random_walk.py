"""The seeded random walk of benchmarks/random_walk.py, short: under ``fixed`` and ``prealloc``
no walk WARNs, breaks an invariant or hits a KernelBug (issue 14 broke 18 of 20 such walks under
``fixed``); under ``rfc-v2`` every walk finds a defect. The full figures are the script's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "random_walk.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gmem_random_walk", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("revision", ["fixed", "prealloc"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_walk_with_single_faults_stays_clean(revision: str, seed: int) -> None:
    walk = load().one_walk(revision, seed, steps=1500, fault_rate=0.3)
    assert walk.steps == 1500 and walk.faults > 300
    assert (walk.warns, walk.violations, walk.kernel_bugs) == (0, 0, 0), walk.first


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_walk_finds_rfc_v2_defects(seed: int) -> None:
    walk = load().one_walk("rfc-v2", seed, steps=1500, fault_rate=0.3)
    assert walk.warns or walk.violations or walk.kernel_bugs
    assert walk.first and f"seed {seed} step " in walk.first[0]


def test_the_script_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    status = load().main(["--steps", "200", "--seeds", "2"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines()[0].split()[:3] == ["revision", "walks", "steps"]
    assert {line.split()[0] for line in out.splitlines()[1:] if not line.startswith(" ")} == {
        "rfc-v2", "fixed", "prealloc"}
