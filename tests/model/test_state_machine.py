"""pytest_gmem.hypothesis: the state machine passes a short run under ``fixed``, finds an RFC v2
defect and prints a program that, pasted, fails the same way; importing pytest_gmem (or loading
its plugin) does not import Hypothesis."""

from __future__ import annotations

import subprocess
import sys

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

from pytest_gmem.hypothesis import GmemFailure, GmemMachine, MachineStats  # noqa: E402


def quick(examples: int, steps: int, *, shrink: bool = True) -> settings:
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]
    return settings(max_examples=examples, stateful_step_count=steps, database=None, derandomize=True,
                    deadline=None, phases=phases, suppress_health_check=list(HealthCheck))


def program(err: BaseException) -> list[str]:
    """The printed program: from ``state = ...`` to ``state.teardown()``."""
    notes = list(getattr(err, "__notes__", []))
    start = next(i for i, line in enumerate(notes) if line.startswith("state = "))
    end = next(i for i, line in enumerate(notes) if line == "state.teardown()")
    return notes[start:end + 1]


def test_a_short_run_under_fixed_passes() -> None:
    machine = GmemMachine.configure(revisions=("fixed",), stats=MachineStats())
    run_state_machine_as_test(machine, settings=quick(12, 40))
    stats = machine.stats
    assert stats is not None and stats.steps >= 250 and stats.faults_armed > 10
    assert not stats.findings


def test_rfc_v2_defect_is_found_and_its_program_reruns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 3 under rfc-v2 (the machine's cheapest find); shrinking is cut short to keep the
    test fast (the benchmark shrinks every defect): the program printed must fail as it is."""
    from hypothesis.internal.conjecture import engine

    monkeypatch.setattr(engine, "MAX_SHRINKING_SECONDS", 2)
    machine = GmemMachine.configure(revisions=("rfc-v2",), target="unbounded-spin",
                                    page_sizes=("2M",), vm_types=("sw_protected",))
    with pytest.raises(GmemFailure) as info:
        run_state_machine_as_test(machine, settings=quick(200, 50))
    assert info.value.defects == ["unbounded-spin"]
    lines = program(info.value)
    assert lines[0] == f"state = {machine.__name__}()"
    assert any(line.startswith("# gmem seed: 0") for line in lines)
    assert any("state.arm_fault(spec='" in line for line in lines)
    code = "\n".join(lines)
    with pytest.raises(GmemFailure) as again:
        exec(compile(code, "<printed program>", "exec"), {machine.__name__: machine})
    assert again.value.defects == ["unbounded-spin"]
    assert str(again.value) == str(info.value)


def test_a_subclass_draws_only_its_revisions() -> None:
    class OnlyPrealloc(GmemMachine):
        revisions = ("prealloc",)
        page_sizes = ("2M",)

    seen: set[str] = set()

    class Watch(OnlyPrealloc):
        def _new_host(self, revision: str, spare: int):  # type: ignore[no-untyped-def]
            seen.add(revision)
            return super()._new_host(revision, spare)

    run_state_machine_as_test(Watch, settings=quick(5, 10, shrink=False))
    assert seen == {"prealloc"}
    assert Watch.convert_shared_1G is None and callable(Watch.convert_shared_2M)


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="target 'partial_punch' is not one of"):
        GmemMachine.configure(target="partial_punch")()


@pytest.mark.parametrize("code", [
    "import pytest_gmem, sys; assert 'hypothesis' not in sys.modules",
    "import pytest_gmem.plugin, pytest_gmem.model, sys; assert 'hypothesis' not in sys.modules",
])
def test_pytest_gmem_does_not_import_hypothesis(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True)
