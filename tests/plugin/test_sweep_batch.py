"""Batched sweep items (--gmem-sweep-batch, the default): up to 64 scenarios of a test in one item,
point, every scenario still reported, counted, recorded and reproducible on its own."""

from __future__ import annotations

import json
import re
import shlex

import pytest

FRAGILE = """
import pytest

@pytest.fixture
def data(gmem):
    gmem.guest_write(0, b"private data")
    return gmem

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points=("__kvm_gmem_filemap_add_folio", "guestmem_hugetlb_stash_metadata"), max_nth=3)
def test_fragile(data):
    data.convert_shared(0, "4K")  # an ENOMEM that reaches the test fails it
"""
CAUGHT = FRAGILE.replace('data.convert_shared(0, "4K")  # an ENOMEM that reaches the test fails it',
                         'try:\n        data.convert_shared(0, "4K")\n    except OSError:\n        pass')
POINT = "__kvm_gmem_filemap_add_folio"


def _ids(result: pytest.RunResult) -> list[str]:
    return [line.split("::", 1)[1] for line in result.stdout.lines if "::" in line]


def test_a_batch_item_names_the_scenarios_it_holds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fr=FRAGILE)
    result = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider")
    stash = "guestmem_hugetlb_stash_metadata-ENOMEM-1"
    assert _ids(result) == ["test_fragile", f"test_fragile[sweep-{POINT}-ENOMEM-1..3+{stash}]"]
    two = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", "--gmem-sweep-batch=2")
    assert _ids(two)[1:] == [f"test_fragile[sweep-{POINT}-ENOMEM-1..2]",
                             f"test_fragile[sweep-{POINT}-ENOMEM-3+{stash}]"]
    three = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", "--gmem-sweep-batch=3")
    assert _ids(three)[1:] == [f"test_fragile[sweep-{POINT}-ENOMEM-1..3]", f"test_fragile[sweep-{stash}]"]


def test_depth_two_batches_hold_the_rollback_faults_of_one_first_fault(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fr=CAUGHT.replace("max_nth=3)", "max_nth=1, depth=2)"))
    ids = _ids(pytester.runpytest("--co", "-q", "-p", "no:cacheprovider"))
    second = [i for i in ids if "-rollback-" in i]
    assert second, ids
    for ident in second:  # one first fault, then the rollback faults (each named with its phase)
        head, _, runs = ident.partition("-rollback-")
        assert "+" not in head and all(r.startswith("rollback-") for r in runs.split("+")[1:]), ident


def test_every_scenario_of_a_batch_is_reported_on_its_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fr=FRAGILE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-seed=4", "--gmem-report=r.json", "-rf")
    result.assert_outcomes(passed=1, failed=4)  # the base test, then one outcome per scenario
    for nth in (1, 2, 3):
        scenario = f"test_fr.py::test_fragile[sweep-{POINT}-ENOMEM-{nth}]"
        result.stdout.fnmatch_lines([f"*_ test_fragile[[]sweep-{POINT}-ENOMEM-{nth}[]] _*"])
        result.stdout.fnmatch_lines([f"FAILED {scenario.replace('[', '[[]')}*"])
        result.stdout.fnmatch_lines([f"reproduce: pytest '{scenario}' --gmem-seed=4"])
    data = json.loads((pytester.path / "r.json").read_text())
    swept = {n: t for n, t in data["tests"].items() if "sweep" in t}
    assert sorted(swept) == sorted([f"test_fr.py::test_fragile[sweep-{POINT}-ENOMEM-{k}]" for k in (1, 2, 3)]
                                   + ["test_fr.py::test_fragile[sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1]"])
    assert all(t["outcome"] == "failed" and t["sweep"]["outcome"] == "failed" for t in swept.values())
    assert not any("1..3" in n for n in data["tests"])  # the batch is no test of its own
    # the printed reproduce line runs exactly that scenario, as its own item
    second = f"reproduce: pytest 'test_fr.py::test_fragile[sweep-{POINT}-ENOMEM-2]"
    line = next(x for x in result.stdout.lines if x.startswith(second))
    again = pytester.runpytest("-p", "no:cacheprovider", *shlex.split(line.removeprefix("reproduce: pytest ")))
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines([f"FAILED test_fr.py::test_fragile[[]sweep-{POINT}-ENOMEM-2[]]*"])


def test_last_failed_reruns_the_failed_scenarios(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fr=FRAGILE)
    pytester.runpytest("--gmem-seed=4").assert_outcomes(passed=1, failed=4)
    again = pytester.runpytest("--gmem-seed=4", "--lf")
    again.assert_outcomes(failed=4)  # the four scenarios, each its own item now
    again.stdout.fnmatch_lines([f"FAILED test_fr.py::test_fragile[[]sweep-{POINT}-ENOMEM-3]*"])


def test_batched_and_single_items_give_the_same_records(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fr=CAUGHT)
    records = {}
    for mode in ("64", "off"):
        result = pytester.runpytest("-p", "no:cacheprovider", "--gmem-seed=4", "--gmem-compare=rfc-v2,fixed",
                                    f"--gmem-report=r-{mode}.json", f"--gmem-sweep-batch={mode}")
        assert result.ret == 0
        data = json.loads((pytester.path / f"r-{mode}.json").read_text())
        records[mode] = {n: (t["outcome"], t["sweep"]["outcome"], t["sweep"]["revision"], t["sweep"]["detail"],
                             t["fired"], t["reproduce"], t["reached"])
                         for n, t in data["tests"].items() if "sweep" in t}
        records[mode + " table"] = data["sweep"]["comparison"]
    assert len(records["64"]) == 8 and records["64"] == records["off"]
    assert records["64 table"] == records["off table"]


def _gmem_sections(result: pytest.RunResult) -> dict[str, str]:
    """Each failed scenario's gmem sections (the checks' texts with their state maps and traces),
    block numbers (global counters of the model) left out."""
    out: dict[str, str] = {}
    name, lines = None, []
    for line in [*result.stdout.lines, "_ end _"]:
        header = re.fullmatch(r"_+ (test_\S+) _+", line)
        if header or line.startswith("="):
            if name is not None:
                text = "\n".join(lines)
                out[name] = re.sub(r"block#\d+", "block#N", text[text.find("--- Captured gmem"):])
            name, lines = (header.group(1) if header else None), []
        elif name is not None:
            lines.append(line)
    return out


def test_a_batched_scenario_fails_with_the_texts_of_its_own_item(pytester: pytest.Pytester) -> None:
    # the person acting on a failure reads its state map: the one the check after the body saw,
    # not the state after the hosts were closed (empty files)
    pytester.makepyfile(test_fr=CAUGHT)
    texts = {}
    for mode in ("64", "off"):
        result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "--gmem-seed=4",
                                    "--gmem-revision=rfc-v2", f"--gmem-sweep-batch={mode}")
        texts[mode] = _gmem_sections(result)
    assert len(texts["64"]) >= 3, texts["64"].keys()
    assert texts["64"] == texts["off"]
    assert all("shareability: [0x0, 0x1000)=S" in t for t in texts["64"].values() if "state map:" in t)


PRINTS = """
import pytest

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points="__kvm_gmem_filemap_add_folio", max_nth=3)
def test_prints(gmem):
    gmem.guest_write(0, b"x")
    print("body of", len(gmem.ranges()), "ranges")
    gmem.convert_shared(0, "4K")  # the ENOMEM reaches the test: each scenario fails
"""


def test_a_batch_shows_each_scenario_in_the_progress_with_its_own_output(pytester: pytest.Pytester) -> None:
    # the scenarios run inside the batch's call phase, where pytest captures the output
    pytester.makepyfile(test_pr=PRINTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "--gmem-seed=4")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(["test_pr.py .FFF *"])  # a letter per scenario, as with one item each
    single = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "--gmem-seed=4",
                                "--gmem-sweep-batch=off")
    single.stdout.fnmatch_lines(["test_pr.py .FFF *"])
    out, alone = result.stdout.str(), single.stdout.str()
    # each failure has its own body's output, once (the first scenario fails before its print)
    assert out.count("- Captured stdout call -") == alone.count("- Captured stdout call -") == 2
    assert out.count("body of 1 ranges") == alone.count("body of 1 ranges") == 2


def test_exitfirst_stops_a_batch_at_its_first_failed_scenario(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_pr=PRINTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "--gmem-seed=4", "-x")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    assert "ENOMEM-2" not in result.stdout.str()


def test_tests_bound_to_their_item_run_one_item_per_scenario(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_b="""
        import pytest

        @pytest.fixture
        def undone(gmem):
            yield gmem
            gmem.close()

        @pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
        @pytest.mark.fault_sweep(points="__kvm_gmem_filemap_add_folio", max_nth=2)
        def test_uses_faults(gmem, faults):
            gmem.guest_write(0, b"x")
            try:
                gmem.convert_shared(0, "4K")
            except OSError:
                pass

        @pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
        @pytest.mark.fault_sweep(points="__kvm_gmem_filemap_add_folio", max_nth=2)
        def test_teardown(undone):
            undone.guest_write(0, b"x")
            try:
                undone.convert_shared(0, "4K")
            except OSError:
                pass
        """
    )
    ids = _ids(pytester.runpytest("--co", "-q", "-p", "no:cacheprovider"))
    assert f"test_uses_faults[sweep-{POINT}-ENOMEM-2]" in ids and f"test_teardown[sweep-{POINT}-ENOMEM-2]" in ids
    assert not [i for i in ids if ".." in i]


def test_batched_scenarios_get_their_own_coverage_contexts(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_cov")
    pytester.makepyfile(test_fr=CAUGHT.replace("max_nth=3", "max_nth=2"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--cov=pytest_gmem", "--cov-context=test",
                                           "--cov-report=")
    result.assert_outcomes(passed=4)
    import coverage

    data = coverage.CoverageData(basename=str(pytester.path / ".coverage"))
    data.read()
    contexts = {c for c in data.measured_contexts() if "fault=" in c}
    assert contexts == {f"test_fr.py::test_fragile[sweep-{POINT}-ENOMEM-{k}]|run|fault={POINT}:ENOMEM#{k}"
                        for k in (1, 2)} | {
        "test_fr.py::test_fragile[sweep-guestmem_hugetlb_stash_metadata-ENOMEM-1]|run|"
        "fault=guestmem_hugetlb_stash_metadata:ENOMEM#1"}


def test_a_bad_batch_size_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--gmem-sweep-batch=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gmem-sweep-batch='many'*number of scenarios*'off'*"])


def test_scenario_reports_from_a_worker_unpickle_builtins_only() -> None:
    import os
    import pickle

    from pytest_gmem.plugin_sweep import load_reports

    reports = [{"nodeid": "t.py::t[sweep-p-ENOMEM-1]", "location": ("t.py", 3, "t"), "longrepr": None,
                "sections": [("gmem", "text")], "gmem": {"reached": {"p": 2}, "raw": b"\x00"}, "duration": 0.5}]
    assert load_reports(pickle.dumps(reports, protocol=5)) == reports
    with pytest.raises(pickle.UnpicklingError, match=r"posix\.system|nt\.system"):
        load_reports(pickle.dumps([os.system], protocol=5))  # a worker that sends code is refused


def test_a_batch_id_says_how_many_scenarios_it_holds(pytester: pytest.Pytester) -> None:
    from pytest_gmem.plugin_batch import scenarios_in

    assert scenarios_in("t.py::test_x[sweep-P-ENOMEM-1..20+Q-speculative_refcount-hold3-1]") == 21
    assert scenarios_in("t.py::test_x[4096-0-fixed-sweep-P-ENOMEM-3-rollback-Q-ENOMEM-1..5+rollback-R-ENOMEM-2]") == 6
    assert scenarios_in("t.py::test_x[sweep-P-ENOMEM-7]") == 1
    assert scenarios_in("t.py::test_x[1..20]") == scenarios_in("t.py::test_plain") == 1
    assert scenarios_in("t.py::test_x[a+b-sweep-odd]") == 1  # not an id the plugin made
    # every batching of a real sweep: the batches' counts add up to the scenarios
    pytester.makepyfile(test_fr=CAUGHT.replace("max_nth=3)", "max_nth=3, depth=2)"))
    single = [i for i in _ids(pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", "--gmem-sweep-batch=off"))
              if "sweep-" in i]
    assert len(single) > 6
    for size in ("2", "5", "64"):
        ids = _ids(pytester.runpytest("--co", "-q", "-p", "no:cacheprovider", f"--gmem-sweep-batch={size}"))
        assert sum(scenarios_in(i) for i in ids if "sweep-" in i) == len(single), size


def test_under_xdist_the_progress_counts_scenarios(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_pr=PRINTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "--gmem-seed=4",
                                           "-n", "2", "-v")
    result.assert_outcomes(passed=1, failed=3)
    shown = [int(m) for m in re.findall(r"\[\s*(\d+)%\]", result.stdout.str())]
    assert shown and max(shown) == 100 and shown[-1] == 100, shown  # it was 200% for a batch of 3


@pytest.mark.parametrize("workers", ["0", "2"])
def test_junitxml_holds_the_scenarios_not_the_batch(pytester: pytest.Pytester, workers: str) -> None:
    # CI dashboards read the JUnit file: a batch is no test of its own, as in pytest's counts
    import xml.etree.ElementTree as ET

    xdist = () if workers == "0" else ("-n", workers)
    if xdist:
        pytest.importorskip("xdist")
    pytester.makepyfile(test_pr=PRINTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "--gmem-seed=4",
                                           "--junitxml=j.xml", *xdist)
    result.assert_outcomes(passed=1, failed=3)
    suite = ET.parse(pytester.path / "j.xml").getroot().find("testsuite")
    assert suite is not None
    names = [case.get("name") for case in suite.findall("testcase")]
    assert names == ["test_prints"] + [f"test_prints[sweep-{POINT}-ENOMEM-{k}]" for k in (1, 2, 3)]
    assert (suite.get("tests"), suite.get("failures")) == ("4", "3")


SLOW = """
import time
import pytest

@pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
@pytest.mark.fault_sweep(points="__kvm_gmem_filemap_add_folio", max_nth=6)
MARK
def test_slow(gmem):
    time.sleep(0.2)  # each scenario takes 0.2 s, well under the test's timeout
    try:
        gmem.guest_write(0, b"x")
        gmem.convert_shared(0, "4K")
    except OSError:
        pass
"""


@pytest.mark.parametrize(("mark", "option"), [("", "--timeout=0.6"), ("@pytest.mark.timeout(0.6)", "")])
def test_a_batch_may_take_the_timeout_of_each_of_its_scenarios(pytester: pytest.Pytester, mark: str,
                                                                option: str) -> None:
    # pytest-timeout times items: a batch of 6 scenarios of 0.2 s timed as one test of 0.6 s would
    # fail its fourth scenario with "Timeout", which passes as its own item
    pytest.importorskip("pytest_timeout")
    pytester.makepyfile(test_slow=SLOW.replace("MARK", mark))
    args = ["-p", "no:cacheprovider", "-p", "no:randomly", "--gmem-seed=4", *([option] if option else [])]
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=7)
    collected = pytester.runpytest_subprocess(*args, "--co", "-q")
    assert f"test_slow.py::test_slow[sweep-{POINT}-ENOMEM-1..6]" in collected.stdout.str()
