"""Fault sweeps through pytest: item ids, reproduction from an id, -n 2, outcomes, the design
comparison (table, SVG, HTML), the census cache."""

from __future__ import annotations

import json

import pytest

SUITE = """
import errno
import pytest
from pytest_gmem import ConversionError

@pytest.fixture
def data(gmem):
    gmem.guest_write(0, b"private data")
    return gmem

@pytest.mark.gmem(size="2M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(kinds=("ENOMEM", "speculative_refcount(hold=3)"), max_nth=2)
def test_split(data):
    before = data.snapshot()
    try:
        data.convert_shared(0, "4K")
    except ConversionError as exc:
        assert exc.errno == errno.ENOMEM
        assert data.snapshot() == before
    assert data.guest_read(0, 12) == b"private data"

def test_not_swept(gmem):
    gmem.convert_private(0, "2M")
"""

SPLIT_IDS = [
    "test_split[sweep-__kvm_gmem_filemap_add_folio-ENOMEM-1]",
    "test_split[sweep-__kvm_gmem_filemap_add_folio-ENOMEM-2]",
    "test_split[sweep-filemap_remove_folio_for_restructuring-specref.hold3-1]",
    "test_split[sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1]",
    "test_split[sweep-hugetlb_vmemmap_restore_folio-ENOMEM-1]",
    "test_split[sweep-kvm_gmem_convert_compute_work-ENOMEM-1]",
    "test_split[sweep-kvm_gmem_shareability_store-ENOMEM-1]",
]


def _ids(result: pytest.RunResult) -> list[str]:
    return sorted(line.split("::", 1)[1] for line in result.stdout.lines if "::" in line)


def test_item_ids_one_per_reachable_fault(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider")
    assert _ids(result) == sorted(["test_not_swept", "test_split", *SPLIT_IDS])


def test_sweep_runs_and_records_outcomes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-report=r.json", "--gmem-revision=fixed")
    result.assert_outcomes(passed=2 + len(SPLIT_IDS))
    data = json.loads((pytester.path / "r.json").read_text())
    outcomes = {k.split("::")[1]: v["sweep"]["outcome"] for k, v in data["tests"].items() if "sweep" in v}
    assert outcomes["test_split[sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1]"] == "clean"
    assert outcomes["test_split[sweep-filemap_remove_folio_for_restructuring-specref.hold3-1]"] == "success"
    assert set(outcomes.values()) <= {"clean", "success"}
    assert data["sweep"]["comparison"]["fixed"]["scenarios"] == len(SPLIT_IDS)
    result.stdout.fnmatch_lines(["*= gmem fault sweep =*", "fixed * 7 * 6 * 1 * 0 * 0 * 0"])


def test_reproduce_one_scenario_from_its_id(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    nodeid = "test_suite.py::test_split[sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1]"
    result = pytester.runpytest("-p", "no:cacheprovider", nodeid, "-v", "--gmem-report=r.json")
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "r.json").read_text())
    record = data["tests"][nodeid]
    assert [f["label"] for f in record["fired"]] == ["guestmem_hugetlb_stash_metadata:ENOMEM#1"]
    assert record["sweep"]["outcome"] == "clean"
    assert record["reproduce"].startswith(f"pytest '{nodeid}'")


def test_plain_sweep_fails_on_kernel_bug_and_warn_expect_makes_them_xfail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    plain = pytester.runpytest("-p", "no:cacheprovider", "--gmem-revision=rfc-v2")
    outcomes = plain.parseoutcomes()
    assert outcomes["failed"] >= 2  # the underflow KernelBug and the "Spinning on folio" WARN
    out = plain.stdout.str()
    assert "FAILED test_suite.py::test_split[sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1]" in out
    assert "KernelBug: kernel bug in kvm_gmem_restructure_folios_in_range(): rollback index underflow" in out
    pytester.makepyfile(test_suite=SUITE.replace("max_nth=2)", "max_nth=2, expect=('kernel-bug', 'warn'))"))
    expected = pytester.runpytest("-p", "no:cacheprovider", "--gmem-revision=rfc-v2", "-rx")
    assert "failed" not in expected.parseoutcomes()
    expected.stdout.fnmatch_lines(["XFAIL*specref.hold3-1*gmem sweep: warn*"])


def test_compare_all_revisions_table_svg_html(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-compare=all", "--gmem-report=out/r.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*= gmem design comparison (fault sweep) =*",
            "revision * scenarios * clean * success * WARN * invariant * KernelBug*",
            "rfc-v2 * 7 *",
            "fixed * 7 * 6 * 1 * 0 * 0 * 0*",
            "prealloc *",
            "gmem: comparison picture written to out/r.svg",
        ]
    )
    data = json.loads((pytester.path / "out" / "r.json").read_text())
    table = data["sweep"]["comparison"]
    assert table["rfc-v2"]["outcomes"]["kernel-bug"] >= 1 and table["rfc-v2"]["outcomes"]["warn"] >= 1
    assert table["fixed"]["outcomes"]["kernel-bug"] == 0
    assert set(k for k, n in table["prealloc"]["outcomes"].items() if n) <= {"clean", "success"}
    from pytest_gmem.compare import check_pattern

    assert check_pattern(data) == []
    svg = (pytester.path / "out" / "r.svg").read_text()
    assert svg.startswith("<svg") and "prealloc" in svg and "KernelBug" in svg
    page = (pytester.path / "out" / "r.html").read_text()
    assert "<svg" in page and "<table>" in page and "rfc-v2-sweep-" in page


def test_compare_items_reproduce_with_the_compare_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    nodeid = "test_suite.py::test_split[rfc-v2-sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1]"
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-compare=rfc-v2", nodeid, "-rx")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*gmem sweep: kernel-bug*underflow*"])


def test_sweep_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--gmem-seed=3", "--gmem-compare=all", "--gmem-report=r.json")
    assert result.ret == 0
    data = json.loads((pytester.path / "r.json").read_text())
    assert len([t for t in data["tests"].values() if "sweep" in t]) == len(data["sweep"]["scenarios"]) >= 20
    assert data["sweep"]["comparison"]["fixed"]["scenarios"] == len(SPLIT_IDS)
    result.stdout.fnmatch_lines(["*= gmem design comparison (fault sweep) =*"])


def test_gmem_sweep_option_sweeps_every_model_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", "--gmem-sweep")
    ids = _ids(result)
    assert "test_not_swept[sweep-kvm_gmem_convert_compute_work-ENOMEM-1]" in ids
    assert "test_split[sweep-filemap_remove_folio_for_restructuring-specref.hold3-1]" in ids  # its marker wins


def test_depth_two_adds_rollback_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE.replace("max_nth=2)", "max_nth=1, depth=2)"))
    result = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", "--gmem-compare=fixed")
    ids = _ids(result)
    assert any("-rollback-" in i for i in ids)
    first = "fixed-sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1"
    assert f"test_split[{first}-rollback-__kvm_gmem_filemap_add_folio-ENOMEM-1]" in ids


def test_census_is_cached(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    first = pytester.runpytest("--co", "-q", "--gmem-seed=5")
    census_dir = pytester.path / ".pytest_cache" / "v" / "gmem" / "census"
    files = list(census_dir.iterdir())
    assert len(files) == 1  # one census: test_split under the default revision
    # the cached census is what the next run uses: pretend compute_work was reached twice
    data = json.loads(files[0].read_text())
    data["hits"]["kvm_gmem_convert_compute_work"] = 2
    files[0].write_text(json.dumps(data))
    second = pytester.runpytest("--co", "-q", "--gmem-seed=5")
    assert "test_split[sweep-kvm_gmem_convert_compute_work-ENOMEM-2]" in _ids(second)
    assert "test_split[sweep-kvm_gmem_convert_compute_work-ENOMEM-2]" not in _ids(first)
    # another seed is another key
    pytester.runpytest("--co", "-q", "--gmem-seed=6")
    assert len(list(census_dir.iterdir())) == 2


def test_bad_marker_arguments_are_collection_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest
        @pytest.mark.fault_sweep(kinds=("ENOMEN",))
        def test_x(gmem):
            pass
        @pytest.mark.fault_sweep(max_nht=2)
        def test_y(gmem):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*marker fault_sweep on test_x*ENOMEN*", "*"])
    assert result.ret != 0
