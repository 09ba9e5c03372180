"""Fault sweeps through pytest: item ids, reproduction from an id, -n 2, outcomes, the design
comparison (table, SVG, HTML), the census cache."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

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


#: One item per scenario (the default runs up to 64 scenarios of a test in one batch item)
OFF = "--gmem-sweep-batch=off"


def _ids(result: pytest.RunResult) -> list[str]:
    return sorted(line.split("::", 1)[1] for line in result.stdout.lines if "::" in line)


def test_item_ids_one_per_reachable_fault(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", OFF)
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
    (pytester.path / "out").mkdir()
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


def _census_counts(result: pytest.RunResult) -> tuple[int, int]:
    import re

    m = re.search(r"gmem: sweep censuses: (\d+) computed, (\d+) from the cache", result.stdout.str())
    assert m, result.stdout.str()
    return int(m.group(1)), int(m.group(2))


@pytest.mark.parametrize("dist", [["-n", "2"], ["--tx", "2*popen//python={python}", "--dist", "load"]],
                         ids=["n2", "tx-2-popen"])
def test_under_xdist_each_census_is_computed_once_and_shipped_when_cached(
        pytester: pytest.Pytester, dist: list[str]) -> None:
    import sys

    args = [a.format(python=sys.executable) for a in dist]
    pytester.makepyfile(test_suite=SUITE)
    single = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "--gmem-report=one.json")
    runs, _read = _census_counts(single)  # one per revision under --gmem-compare; here one
    cold = pytester.runpytest_subprocess(*args, "--gmem-report=cold.json")
    assert cold.ret == 0
    # the two workers collect the same tests: the census lock makes one compute, the other read it
    assert _census_counts(cold) == (runs, runs)
    warm = pytester.runpytest_subprocess(*args, "--gmem-report=warm.json")
    assert warm.ret == 0
    assert _census_counts(warm) == (0, 2 * runs)  # shipped by the controller: nothing computed
    outcomes = {
        name: {k: v["sweep"]["outcome"] for k, v in json.loads((pytester.path / name).read_text())["tests"].items()
               if "sweep" in v}
        for name in ("one.json", "cold.json", "warm.json")
    }
    assert outcomes["one.json"] == outcomes["cold.json"] == outcomes["warm.json"]
    assert len(outcomes["one.json"]) == len(SPLIT_IDS)
    # the two scenarios of add_folio ran in one batch item on a worker, reported one by one
    assert {f"test_suite.py::{i}" for i in SPLIT_IDS} == set(outcomes["warm.json"])
    warm.stdout.fnmatch_lines(["*9 passed*"])  # 2 tests + 7 scenarios, counted per scenario


def test_gmem_sweep_option_sweeps_every_model_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", "--gmem-sweep", "--gmem-sweep-batch=off")
    ids = _ids(result)
    assert "test_not_swept[sweep-kvm_gmem_convert_compute_work-ENOMEM-1]" in ids
    assert "test_split[sweep-filemap_remove_folio_for_restructuring-specref.hold3-1]" in ids  # its marker wins


def test_depth_two_adds_rollback_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE.replace("max_nth=2)", "max_nth=1, depth=2)"))
    result = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", "--gmem-compare=fixed",
                                "--gmem-sweep-batch=off")
    ids = _ids(result)
    assert any("-rollback-" in i for i in ids)
    first = "fixed-sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1"
    assert f"test_split[{first}-rollback-__kvm_gmem_filemap_add_folio-ENOMEM-1]" in ids


def _census_files(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".pytest_cache" / "d" / "gmem-census").glob("*.json"))


def test_census_is_cached(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    first = pytester.runpytest("--co", "-q", "--gmem-seed=5", OFF)
    files = _census_files(pytester)
    assert len(files) == 1  # one census: test_split under the default revision
    # the cached census is what the next run uses: pretend compute_work was reached twice
    data = json.loads(files[0].read_text())
    data["hits"]["kvm_gmem_convert_compute_work"] = 2
    files[0].write_text(json.dumps(data))
    second = pytester.runpytest("--co", "-q", "--gmem-seed=5", OFF)
    assert "test_split[sweep-kvm_gmem_convert_compute_work-ENOMEM-2]" in _ids(second)
    assert "test_split[sweep-kvm_gmem_convert_compute_work-ENOMEM-2]" not in _ids(first)
    # the seed is not in the key of a census that did not draw on it: a random seed hits too
    third = pytester.runpytest("--co", "-q", OFF)
    assert "test_split[sweep-kvm_gmem_convert_compute_work-ENOMEM-2]" in _ids(third)
    third.stdout.fnmatch_lines(["gmem: sweep censuses: 0 computed, 1 from the cache"])
    assert len(_census_files(pytester)) == 1


SEEDED = """
import pytest
from pytest_gmem import ConversionError

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault("kvm_gmem_convert_compute_work=50%enomem")
@pytest.mark.fault_sweep(points="kvm_gmem_shareability_store")
def test_dice(gmem):
    for k in range(2):
        try:
            gmem.convert_shared(k << 21, "4K")
        except ConversionError:
            pass
"""


def test_a_census_that_draws_on_the_seed_is_cached_per_seed(pytester: pytest.Pytester) -> None:
    # a probabilistic fault rolls dice seeded from the session seed: which hits the body makes
    # depends on it, so such a census is kept per seed (with a note under the seedless key)
    pytester.makepyfile(test_dice=SEEDED)
    ids = {}
    for seed in (1, 2, 1):
        result = pytester.runpytest("--co", "-q", f"--gmem-seed={seed}")
        ids.setdefault(seed, []).append(_ids(result))
    assert ids[1][0] == ids[1][1]
    notes = [f for f in _census_files(pytester) if json.loads(f.read_text())["seeded"] and not
             json.loads(f.read_text())["hits"]]
    assert len(_census_files(pytester)) == 3 and len(notes) == 1  # the note, seed 1, seed 2
    result.stdout.fnmatch_lines(["gmem: sweep censuses: 0 computed, 1 from the cache"])


def _forget_bytecode(pytester: pytest.Pytester) -> None:
    """Before rewriting a module with a same-sized text: its .pyc is keyed by mtime (1 s) and
    size, so a rewrite within the same second would otherwise run the old code."""
    import shutil

    for cache in pytester.path.rglob("__pycache__"):
        shutil.rmtree(cache)


def test_census_key_covers_conftest_files(pytester: pytest.Pytester) -> None:
    # The fixture in conftest.py decides how many conversions the body makes: changing it must
    # not keep the stale census (the new scenarios would silently be missing).
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef nconv():\n    return 1\n")
    pytester.makepyfile(
        test_cs="""
        import pytest
        from pytest_gmem import ConversionError

        @pytest.mark.gmem(size="8M", page_size="2M", init_private=True)
        @pytest.mark.fault_sweep(points="kvm_gmem_convert_compute_work")
        def test_s(gmem, nconv):
            for k in range(nconv):
                try:
                    gmem.convert_shared(k << 21, "2M")
                except ConversionError:
                    pass
        """
    )
    assert len([i for i in _ids(pytester.runpytest("--co", "-q", "--gmem-seed=1", OFF)) if "sweep-" in i]) == 1
    _forget_bytecode(pytester)
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef nconv():\n    return 3\n")
    assert len([i for i in _ids(pytester.runpytest("--co", "-q", "--gmem-seed=1", OFF)) if "sweep-" in i]) == 3


def test_census_cache_is_bounded(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_gmem.sweep.census

    monkeypatch.setattr(pytest_gmem.sweep.census, "CENSUS_CACHE_LIMIT", 3)
    pytester.makepyfile(test_suite=SUITE, test_dice=SEEDED)
    for seed in range(6):  # every seed is a new key for a census that draws on it
        pytester.runpytest("--co", "-q", f"--gmem-seed={seed}")
    assert len(_census_files(pytester)) == 3
    result = pytester.runpytest("--co", "-q", "--gmem-seed=5")  # the newest are the ones kept
    assert len(_census_files(pytester)) == 3
    assert any("sweep-" in i for i in _ids(result))


def test_session_fixture_is_built_once_with_a_census(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        SETUPS = []

        @pytest.fixture(scope="session")
        def expensive():
            SETUPS.append("setup")
            yield len(SETUPS)
            SETUPS.append("teardown")
        """
    )
    pytester.makepyfile(
        test_a_plain="""
        from conftest import SETUPS

        def test_first(expensive):
            assert SETUPS == ["setup"], SETUPS
        """,
        test_b_sweep="""
        import pytest
        from pytest_gmem import ConversionError
        from conftest import SETUPS

        @pytest.mark.gmem(size="4M", init_private=True)
        @pytest.mark.fault_sweep(points="kvm_gmem_convert_compute_work")
        def test_s(gmem, expensive):
            try:
                gmem.convert_shared(0, "2M")
            except ConversionError:
                pass

        def test_count(expensive):
            assert SETUPS == ["setup"], SETUPS
        """,
    )
    cold = pytester.runpytest("-p", "no:randomly", "--gmem-seed=3")
    cold.assert_outcomes(passed=4)
    warm = pytester.runpytest("-p", "no:randomly", "--gmem-seed=3")  # the census comes from the cache
    warm.assert_outcomes(passed=4)


def test_census_runs_call_no_public_hooks(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        EVENTS = []

        def pytest_gmem_fault_fired(item, fired):
            EVENTS.append(("fired", item.nodeid))

        def pytest_gmem_test_outcome(item, outcome):
            EVENTS.append(("outcome", item.nodeid))

        def pytest_sessionfinish(session):
            print("\\nEVENTS", len(EVENTS), sorted(set(EVENTS)))
        """
    )
    pytester.makepyfile(
        test_s="""
        import pytest
        from pytest_gmem import ConversionError

        @pytest.mark.gmem(size="4M", init_private=True)
        @pytest.mark.fault_sweep(points="kvm_gmem_convert_compute_work", depth=2)
        def test_s(gmem):
            try:
                gmem.convert_shared(0, "2M")
            except ConversionError:
                pass
        """
    )
    collect_only = pytester.runpytest("--co", "-q", "-s", "-p", "no:cacheprovider")
    collect_only.stdout.fnmatch_lines(["EVENTS 0 []"])
    run = pytester.runpytest("-q", "-s", "-p", "no:cacheprovider")
    sweep_id = "test_s.py::test_s[sweep-kvm_gmem_convert_compute_work-ENOMEM-1]"
    expected = [("fired", sweep_id), ("outcome", "test_s.py::test_s"), ("outcome", sweep_id)]
    assert f"EVENTS 3 {expected}" in run.stdout.lines, run.stdout.str()


def test_printed_reproduce_line_of_a_sweep_item_runs_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_g="""
        import pytest

        @pytest.mark.gmem(size="4M", init_private=True)
        def test_swept_by_option(gmem):
            gmem.convert_shared(0, "2M")    # fails when a fault fires
        """
    )
    # failing items print their sections; under --gmem-compare they pass or xfail: -rP shows them
    for flags, shown in ((["--gmem-sweep"], ()), (["--gmem-compare=rfc-v2", "--gmem-sweep"], ("-rP",))):
        result = pytester.runpytest("-p", "no:cacheprovider", *flags, *shown)
        lines = [ln.split("reproduce: ", 1)[1] for ln in result.stdout.lines if "reproduce: pytest " in ln]
        lines = [ln for ln in lines if "sweep-" in ln]
        assert lines, result.stdout.str()
        assert all(ln.endswith(" ".join(flags)) for ln in lines), lines
        args = shlex.split(lines[0])
        assert args[0] == "pytest"
        again = pytester.runpytest("-p", "no:cacheprovider", "-v", *args[1:])
        outcomes = again.parseoutcomes()
        assert sum(outcomes.get(k, 0) for k in ("passed", "failed", "xfailed")) == 1, again.stdout.str()
        assert any(ln.startswith(f"{args[1]} ") for ln in again.stdout.lines), again.stdout.str()


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ('points="kvm_gmem_nope*"', "*glob 'kvm_gmem_nope*' (from marker fault_sweep on test_bad)*"),
        ('kinds=("ENOMEN",)', "*marker fault_sweep on test_bad*ENOMEN*"),
        ("max_nht=2", "*marker fault_sweep on test_bad: unexpected argument 'max_nht' (did you mean 'max_nth'?)*"),
        ("points=5", "*marker fault_sweep on test_bad: points must be a glob or a sequence of globs, got 5"),
        ("kinds=5", "*marker fault_sweep on test_bad: kinds must be a kind or a sequence of kinds*got 5"),
        ("expect=5", "*marker fault_sweep on test_bad: expect must be an outcome or a sequence of outcomes, got 5"),
        ("kinds=(faults.Callback(lambda f: None),)",
         "*marker fault_sweep on test_bad: cannot sweep kind 'callback(<lambda>)'*"),
        ("depth=2.0", "*marker fault_sweep on test_bad: depth must be 1 or 2, got 2.0"),
        ('depth="2"', "*marker fault_sweep on test_bad: depth must be 1 or 2, got '2'"),
    ],
)
def test_bad_marker_makes_only_that_test_an_error(pytester: pytest.Pytester, marker: str, expected: str) -> None:
    pytester.makepyfile(
        test_bad=f"""
        import faults
        import pytest

        @pytest.mark.fault_sweep({marker})
        def test_bad(gmem):
            gmem.convert_private(0, "2M")

        @pytest.mark.fault_sweep(points="kvm_gmem_convert_compute_work")
        def test_good(gmem):
            gmem.convert_private(0, "2M")

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(errors=1, passed=2, failed=1)  # test_good's sweep item fails: its body does not catch
    result.stdout.fnmatch_lines(["*ERROR at setup of test_bad*", expected])
    assert "Traceback" not in result.stdout.str() and "plugin_sweep.py" not in result.stdout.str()
    alone = pytester.runpytest("-p", "no:cacheprovider", "test_bad.py::test_plain")  # selected by id
    alone.assert_outcomes(passed=1)


def test_compare_needs_a_revision(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-compare=,")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: gmem: --gmem-compare=',': name at least one revision (*) or 'all'"])


def test_compare_all_is_not_a_revision_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-compare=all,fixed")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: gmem: --gmem-compare='all,fixed': 'all' cannot be combined with revision names; give 'all' alone*"]
    )
    assert "did you mean" not in result.stderr.str()


def test_skip_and_xfail_marked_swept_tests_do_not_warn(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sk="""
        import pytest

        @pytest.mark.skip(reason="not today")
        @pytest.mark.gmem(size="4M", init_private=True)
        @pytest.mark.fault_sweep(points="kvm_gmem_convert_compute_work")
        def test_skipped(gmem):
            gmem.convert_shared(0, "2M")

        @pytest.mark.xfail(reason="known bug", strict=False)
        @pytest.mark.gmem(size="4M", init_private=True)
        @pytest.mark.fault_sweep(points="kvm_gmem_convert_compute_work")
        def test_xfail(gmem):
            gmem.convert_shared(0, "2M")
            assert False
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1, xfailed=1)
    assert "census run" not in result.stdout.str()


def test_sweep_items_check_that_a_failed_conversion_changed_nothing(pytester: pytest.Pytester) -> None:
    """The hosts the plugin builds for sweep items (not for the test's own item) compare the file
    before and after every conversion that fails with ENOMEM/EAGAIN (model invariant 7), so a
    silent partial conversion is an ``invariant`` outcome even when the test asserts nothing."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
        @pytest.mark.fault_sweep(points="kvm_gmem_shareability_store")
        def test_s(gmem, gmem_host, request):
            assert gmem_host.check_rollback == ("[sweep-" in request.node.name)
            try:
                gmem.convert_shared(0, "4K")
            except OSError:
                pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


TEARDOWN_CHECK = """
import pytest
from pytest_gmem import ConversionError

@pytest.fixture
def data(gmem):
    gmem.guest_write(0, b"private data")
    yield gmem
    assert gmem.shareability(0) == "shared", "teardown check: the conversion did not happen"

@pytest.mark.gmem(size="2M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points="guestmem_hugetlb_stash_metadata", max_nth=1)
def test_split(data):
    try:
        data.convert_shared(0, "4K")
    except ConversionError:
        pass
"""


@pytest.mark.parametrize("flags", [["--gmem-compare=fixed"], ["--gmem-revision=fixed"]])
def test_a_fixture_failing_at_teardown_makes_the_scenario_failed(pytester: pytest.Pytester, flags: list[str]) -> None:
    pytester.makepyfile(test_td=TEARDOWN_CHECK)
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-report=r.json", *flags)
    result.assert_outcomes(passed=2, errors=1)  # the base item, the sweep item's body; its teardown
    data = json.loads((pytester.path / "r.json").read_text())
    (record,) = [t["sweep"] for t in data["tests"].values() if "sweep" in t]
    assert record["outcome"] == "failed"
    assert record["detail"].startswith("teardown: AssertionError: teardown check")
    assert data["sweep"]["comparison"]["fixed"]["outcomes"]["failed"] == 1
    assert data["sweep"]["comparison"]["fixed"]["outcomes"]["clean"] == 0


SKIPPING = """
import pytest
from pytest_gmem import ConversionError

@pytest.mark.gmem(size="2M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points="guestmem_hugetlb_stash_metadata")
def test_s(gmem):
    gmem.guest_write(0, b"x")
    try:
        gmem.convert_shared(0, "4K")
    except ConversionError as exc:
        pytest.{how}(f"conversion refused ({{exc.errno}})")
"""


@pytest.mark.parametrize(("how", "pytest_outcome"), [("skip", "skipped"), ("xfail", "xfailed")])
def test_skip_or_xfail_in_a_sweep_body_is_skipped_not_failed(
    pytester: pytest.Pytester, how: str, pytest_outcome: str
) -> None:
    from pytest_gmem.compare import check_pattern, main

    pytester.makepyfile(test_sk=SKIPPING.format(how=how))
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-compare=prealloc", "--gmem-report=r.json")
    result.assert_outcomes(passed=1, **{pytest_outcome: 1})
    result.stdout.fnmatch_lines(["revision * scenarios * clean * success * WARN * invariant * KernelBug * skipped",
                                 "prealloc * 1 * 0 * 0 * 0 * 0 * 0 * 1"])
    data = json.loads((pytester.path / "r.json").read_text())
    (record,) = data["sweep"]["scenarios"]
    assert record["outcome"] == "skipped" and record["detail"].startswith("skipped: conversion refused")
    assert data["sweep"]["comparison"]["prealloc"]["outcomes"]["skipped"] == 1
    assert data["sweep"]["comparison"]["prealloc"]["outcomes"]["failed"] == 0
    assert ">skipped<" in (pytester.path / "r.svg").read_text()
    assert check_pattern(data) == ["no rfc-v2 scenarios in the comparison", "no fixed scenarios in the comparison",
                                   "no upstream scenarios in the comparison"]
    assert main([str(pytester.path / "r.json")]) == 1  # only for the two missing rows


DUPLICATES = """
import pytest
from pytest_gmem import ConversionError

@pytest.mark.gmem(size="2M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points="guestmem_hugetlb_stash_metadata", kinds=KINDS)
def test_d(gmem):
    gmem.guest_write(0, b"x")
    try:
        gmem.convert_shared(0, "4K")
    except ConversionError:
        pass
"""


@pytest.mark.parametrize(
    ("kinds", "compare"),
    [('("ENOMEM",)', "fixed,fixed"), ('("ENOMEM", "enomem")', "fixed"), ('"ENOMEM"', "fixed, fixed")],
)
def test_a_repeated_revision_or_kind_makes_one_item(pytester: pytest.Pytester, kinds: str, compare: str) -> None:
    pytester.makepyfile(test_dup=DUPLICATES.replace("KINDS", kinds))
    collected = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", f"--gmem-compare={compare}")
    assert _ids(collected) == ["test_d", "test_d[fixed-sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1]"]
    result = pytester.runpytest("-p", "no:cacheprovider", f"--gmem-compare={compare}", "--gmem-report=r.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["fixed * 1 * 1 * 0 *"])
    data = json.loads((pytester.path / "r.json").read_text())
    assert len(data["sweep"]["scenarios"]) == data["sweep"]["comparison"]["fixed"]["scenarios"] == 1


def test_census_key_covers_helper_modules_the_test_imports(pytester: pytest.Pytester) -> None:
    # a helper module decides how many conversions the body makes: changing it must not keep the
    # stale census; nor through a package, a relative-free "from ... import", or a helper's helper
    pytester.makepyfile(
        helper="from helpers.sizes import N\n",
        test_h="""
        import pytest
        from pytest_gmem import ConversionError
        from helper import N

        @pytest.mark.gmem(size="8M", page_size="2M", init_private=True)
        @pytest.mark.fault_sweep(points="kvm_gmem_convert_compute_work")
        def test_h(gmem):
            for k in range(N):
                try:
                    gmem.convert_shared(k << 21, "2M")
                except ConversionError:
                    pass
        """,
    )
    (pytester.path / "helpers").mkdir()
    (pytester.path / "helpers" / "__init__.py").write_text("")
    sizes = pytester.path / "helpers" / "sizes.py"

    def swept() -> int:
        result = pytester.runpytest_subprocess("--co", "-q", "--gmem-seed=1", OFF)
        return len([i for i in _ids(result) if "sweep-" in i])

    sizes.write_text("N = 1\n")
    assert swept() == 1
    assert len(_census_files(pytester)) == 1
    _forget_bytecode(pytester)
    sizes.write_text("N = 3\n")
    assert swept() == 3
    assert swept() == 3 and len(_census_files(pytester)) == 2  # the new census is cached in turn
    # pytest's own --cache-clear starts from an empty cache
    pytester.runpytest_subprocess("--co", "-q", "--gmem-seed=1", "--cache-clear")
    assert len(_census_files(pytester)) == 1


@pytest.mark.parametrize("kind", ["ENOMEM", "EAGAIN", "speculative_refcount(hold=3)",
                                  "speculative_refcount(hold=none)"])
@pytest.mark.parametrize("phase", [None, "rollback"])
def test_a_scenario_arms_under_the_text_the_grammar_gives_it(kind: str, phase: str | None) -> None:
    """A sweep's arm request carries its fault's text (formatting it per scenario costs a tenth
    of the arming): it must be what the request would format itself, and what it arms."""
    import dataclasses

    from faults.grammar import parse_kind
    from pytest_gmem.sweep import Scenario
    from pytest_gmem.sweep.outcome import ItemState
    from pytest_gmem.sweep.spec import SweepFault

    fault = SweepFault("kvm_gmem_shareability_store", parse_kind(kind), 2, phase)
    request = ItemState(Scenario((fault,)), "fault_sweep on t", "t").arm_requests()[0]
    assert request.label is not None
    assert request.text() == dataclasses.replace(request, label=None).text() == fault.text()
