"""Bad values fail early, name the value, where it came from, and the close match."""

from __future__ import annotations

import pytest


def _error_text(result: pytest.RunResult) -> str:
    return "\n".join(result.stdout.lines + result.stderr.lines)


def test_unknown_point_in_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.enomem("kvm_gmem_shareabilty_store")
        def test_typo(gmem):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*unknown fault point 'kvm_gmem_shareabilty_store' (from marker enomem on test_typo)*"
            "did you mean 'kvm_gmem_shareability_store'?*"
        ]
    )
    # no deep traceback into the plugin
    assert "plugin.py" not in _error_text(result)


def test_misspelt_marker_argument(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.enomem("kvm_gmem_convert_compute_work", nht=2)
        def test_nht(gmem):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*marker enomem on test_nht: unexpected argument 'nht' (did you mean 'nth'?)*"])


def test_kind_the_point_cannot_produce(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.speculative_refcount("kvm_gmem_convert_compute_work")
        def test_kind(gmem):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*'kvm_gmem_convert_compute_work' cannot produce 'speculative_refcount'"
            "*marker speculative_refcount on test_kind*"
        ]
    )


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ('gmem(page_size="3M")', "*marker gmem on test_x: invalid page_size '3M'*"),
        ('gmem(revision="fixd")', "*unknown revision 'fixd' from marker gmem on test_x*did you mean 'fixed'?*"),
        ('gmem(sise="4M")', "*marker gmem on test_x: *sise*(did you mean 'size'?)*"),
        (
            'enomem("kvm_gmem_convert_compute_work", nth=0)',
            "*marker enomem on test_x: nth must be an integer >= 1, got 0*",
        ),
        ('tdx_unmap_failure(error="TDX_OPERAND_BUZY")', "*TDX_OPERAND_BUZY*did you mean 'TDX_OPERAND_BUSY'?*"),
        ('allow_warn("(")', "*marker allow_warn on test_x: invalid regular expression '('*"),
        ('fault("kvm_gmem_convert_compute_work=enomem(")', "*at character 3? (from marker fault on test_x)*"),
        ('tdx_unmap_failure(error=5)', "*marker tdx_unmap_failure on test_x: error must be a TDX error name*got 5*"),
        ('gmem(size="0")', "*marker gmem on test_x: invalid size '0' for page_size '2M'*positive multiple*"),
        ("gmem(size=3)", "*marker gmem on test_x: invalid size 3 for page_size '2M'*"),
        ('gmem(size="3M", page_size="2M")', "*marker gmem on test_x: invalid size '3M' for page_size '2M'*"),
        ('gmem(size="6K", page_size="4K")', "*marker gmem on test_x: invalid size '6K' for page_size '4K'*"),
        (
            "gmem(mmap=False, init_private=True)",
            "*marker gmem on test_x: init_private=True needs mmap=True, got mmap=False*",
        ),
        (
            'enomem("kvm_gmem_convert_compute_work", phase="rollback", when={"phase": "forward"})',
            "*marker enomem on test_x: context filter 'phase' given twice with different values: "
            "phase='rollback' and when={'phase': 'forward'}*",
        ),
        (
            'enomem("kvm_gmem_convert_compute_work", when="phase=forward")',
            "*marker enomem on test_x: when must be a mapping of context keys to values*got 'phase=forward'*",
        ),
        (
            'tdx_unmap_failure(when={"phase": "forward"})',
            "*marker tdx_unmap_failure on test_x: *unexpected keyword argument 'when'*",
        ),
    ],
)
def test_bad_marker_values(pytester: pytest.Pytester, marker: str, expected: str) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.{marker}\ndef test_x(gmem):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])


def test_bad_gmem_fault_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--gmem-fault", "kvm_gmem_convert_compute_wrk=enomem")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown fault point 'kvm_gmem_convert_compute_wrk' (from --gmem-fault)" in _error_text(result)
    assert "did you mean 'kvm_gmem_convert_compute_work'?" in _error_text(result)


def test_bad_gmem_faults_env(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMEM_FAULTS", "kvm_gmem_convert_compute_work=enomen")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = _error_text(result)
    assert "from GMEM_FAULTS" in text and "enomen" in text and "ENOMEM" in text


def test_bad_ini_fault(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ngmem_faults =\n    kvm_gmem_convert_compute_work=enomem\n    no_such_point=enomem\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown fault point 'no_such_point' (from ini gmem_faults)" in _error_text(result)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--gmem-revision=fixd"], {}, "unknown revision 'fixd' from --gmem-revision; known: *did you mean 'fixed'?*"),
        ([], {"GMEM_REVISION": "rfc-v3"}, "unknown revision 'rfc-v3' from GMEM_REVISION*"),
        (["--gmem-seed=abc"], {}, "invalid seed 'abc' from --gmem-seed*"),
        ([], {"GMEM_SEED": "-1"}, "invalid seed '-1' from GMEM_SEED*"),
    ],
)
def test_bad_settings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], expected: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: gmem: {expected}"])


@pytest.mark.parametrize("fixture", ["gmem", "gmem_vm"])
def test_model_refusing_the_marker_is_a_clean_failure(pytester: pytest.Pytester, fixture: str) -> None:
    # The pool holds one 2M page, the file needs two: the model's ENOMEM names the marker, no traceback.
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.gmem(size="4M", page_size="2M", hugetlb={{"2M": 1}})
        def test_x({fixture}):
            pass

        @pytest.mark.gmem(size="2M", page_size="2M", hugetlb={{"2M": 1}})
        def test_fits(gmem):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    if fixture == "gmem_vm":  # no file is made: nothing to refuse
        result.assert_outcomes(passed=2)
        return
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["gmem: marker gmem on test_x (size='4M', page_size='2M', hugetlb={'2M': 1}): the model refused to build "
         "the test's guest_memfd: GmemError: [[]Errno 12[]] Cannot allocate memory*"]
    )
    assert "Traceback" not in result.stdout.str() and "guest_memfd.py:" not in result.stdout.str()


def test_model_refusal_is_one_line_without_the_chained_oserror(pytester: pytest.Pytester) -> None:
    # The setup error is the gmem line alone: not the raw OSError, then "During handling of the
    # above exception, another exception occurred:", then the gmem line.
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gmem(size="4M", page_size="2M", hugetlb={"2M": 1})
        def test_pool(gmem):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    assert "During handling of the above exception" not in text
    section = text.split("ERROR at setup of test_pool")[1].split("\n")[1:3]
    assert section[0].startswith("gmem: marker gmem on test_pool (size='4M'"), section
    assert "[Errno 12]" in section[0] and not section[1].startswith("[Errno"), section
