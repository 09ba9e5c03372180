"""Markers, options, header line, --gmem-points, -p no:gmem."""

from __future__ import annotations

import pytest

ALL_MARKERS = """
import pytest

@pytest.mark.gmem(size="4M", page_size="2M")
@pytest.mark.enomem("kvm_gmem_convert_compute_work", nth=5)
@pytest.mark.speculative_refcount("kvm_gmem_has_safe_refcount", refs=1, hold=0, nth=9)
@pytest.mark.fault("kvm_gmem_convert_compute_work=9*off->1*enomem")
@pytest.mark.allow_warn("never")
@pytest.mark.fault_sweep(points="*", kinds=("ENOMEM",))
def test_all(gmem):
    pass

@pytest.mark.gmem(vm_type="tdx")
@pytest.mark.tdx_unmap_failure(error="fatal", nth=3)
def test_tdx(gmem):
    pass
"""


def test_markers_listed_with_signatures(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.gmem(size='4M', page_size='2M', mmap=True, init_private=False, vm_type='sw_protected', *",
            "@pytest.mark.enomem(point, nth=1, times=1, **when): *",
            "@pytest.mark.speculative_refcount(point, refs=1, hold=None, nth=1, times=1, **when): *",
            "@pytest.mark.tdx_unmap_failure(point='tdh_mem_page_remove', error='TDX_OPERAND_BUSY', nth=1, times=1): *",
            "@pytest.mark.fault(spec): *",
            "@pytest.mark.fault_sweep(points='*', kinds=('ENOMEM',), max_nth=None, depth=1, expect=()): *",
            "@pytest.mark.allow_warn(pattern): *",
        ]
    )
    assert result.ret == 0


def test_strict_markers_clean(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ALL_MARKERS)
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=2)


def test_disabled_with_p_no_gmem(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(gmem):\n    pass\n")
    result = pytester.runpytest("-p", "no:gmem")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'gmem' not found*"])
    result.stdout.no_fnmatch_line("gmem: --gmem-seed=*")


def test_header_seed_line_given(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--gmem-seed=1234")
    assert result.stdout.lines.count("gmem: --gmem-seed=1234") == 1


def test_seed_precedence(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    pytester.makeini("[pytest]\ngmem_seed = 77\n")
    assert "gmem: --gmem-seed=77" in pytester.runpytest().stdout.lines
    monkeypatch.setenv("GMEM_SEED", "78")
    assert "gmem: --gmem-seed=78" in pytester.runpytest().stdout.lines
    assert "gmem: --gmem-seed=79" in pytester.runpytest("--gmem-seed=79").stdout.lines


def test_header_seed_line_random(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    first = pytester.runpytest()
    second = pytester.runpytest()
    seeds = [[line for line in r.stdout.lines if line.startswith("gmem: --gmem-seed=")] for r in (first, second)]
    assert all(len(s) == 1 for s in seeds)
    assert seeds[0] != seeds[1]  # a fresh 32-bit seed each run


def test_help_states_defaults(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = " ".join(" ".join(result.stdout.lines).split())  # argparse wraps the help text
    for option in ("--gmem-revision", "--gmem-fault", "--gmem-seed", "--gmem-points", "--gmem-report", "--gmem-sweep"):
        assert option in text
    assert "Default: 'fixed'" in text
    assert "Default: a random seed" in text and "Default: no report" in text
    assert "gmem_faults" in text and "gmem_revision" in text  # ini keys


def test_points_prints_catalog_and_exits(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    raise AssertionError('must not run')\n")
    result = pytester.runpytest("--gmem-points")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["kvm_gmem_convert_compute_work  [[]ENOMEM[]]", "kvm_gmem_shareability_store  [[]ENOMEM[]]"]
    )
    result.stdout.no_fnmatch_line("*must not run*")
