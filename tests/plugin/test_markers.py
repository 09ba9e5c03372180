"""Each fault marker arms what it says, on the real model, for the test body only."""

from __future__ import annotations

import pytest


def test_gmem_marker_builds_the_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gmem(size="4M", page_size="2M", init_private=True)
        def test_private(gmem):
            assert gmem.ranges() == [(0, 4 << 20, "private")]

        @pytest.mark.gmem(size="2M", page_size="2M")
        def test_shared(gmem):
            assert gmem.ranges() == [(0, 2 << 20, "shared")]

        @pytest.mark.gmem(size="8K", page_size="4K")
        class TestClassLevel:
            @pytest.mark.gmem(size="16K")  # nearest wins per argument: page_size stays 4K
            def test_nearest(self, gmem):
                assert gmem.ranges() == [(0, 16 << 10, "shared")]
                gmem.convert_private(4096, 4096)
                assert gmem.shareability(4096) == "private"
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_enomem_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import errno
        import pytest
        from pytest_gmem import ConversionError

        @pytest.mark.enomem("kvm_gmem_convert_compute_work", nth=2)
        def test_second_conversion_fails(gmem):
            gmem.convert_private(0, "2M")
            with pytest.raises(ConversionError) as info:
                gmem.convert_shared(0, "2M")
            assert info.value.errno == errno.ENOMEM
            gmem.convert_shared(0, "2M")   # times=1: the third works
            assert gmem.shareability(0) == "shared"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_enomem_marker_not_during_fixture_setup(pytester: pytest.Pytester) -> None:
    # The marker arms just before the body: building the gmem fixture does not consume nth=1.
    pytester.makepyfile(
        """
        import pytest
        from pytest_gmem import ConversionError

        @pytest.mark.enomem("*", nth=1)
        def test_first_hit_in_body(gmem, faults):
            with pytest.raises(Exception):
                gmem.convert_private(0, "2M")
            assert len(faults.fired) == 1
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_speculative_refcount_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import errno
        import pytest
        from pytest_gmem import ConversionError

        @pytest.mark.gmem(size="2M", page_size="2M")
        @pytest.mark.speculative_refcount("kvm_gmem_has_safe_refcount", refs=1, hold=None)
        def test_eagain(gmem, faults):
            gmem.guest_write(0, b"x")
            with pytest.raises(ConversionError) as info:
                gmem.convert_private(0, "2M")
            assert info.value.errno == errno.EAGAIN
            assert [f.point for f in faults.fired] == ["kvm_gmem_has_safe_refcount"]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_fault_marker_grammar(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import errno
        import pytest
        from pytest_gmem import ConversionError

        @pytest.mark.fault("kvm_gmem_convert_compute_work=1*off->1*enomem")
        def test_chain(gmem, faults):
            gmem.convert_private(0, "2M")
            with pytest.raises(ConversionError) as info:
                gmem.convert_shared(0, "2M")
            assert info.value.errno == errno.ENOMEM
            assert [f.label() for f in faults.fired] == ["kvm_gmem_convert_compute_work:ENOMEM#2"]
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_when_filter_from_marker_keywords(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.enomem("kvm_gmem_convert_compute_work", phase="no-such-phase")
        def test_never(gmem, faults):
            gmem.convert_private(0, "2M")
            assert faults.fired == []
            assert len(faults.unfired()) == 1
        """
    )
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["never fired*", "*kvm_gmem_convert_compute_work*phase=no-such-phase*"])


def test_when_mapping_on_fault_markers(pytester: pytest.Pytester) -> None:
    # when={...} as faults.inject takes it: a filter on the context, merged with the keyword
    # filters; not a filter on a context key named "when" that never matches.
    pytester.makepyfile(
        """
        import pytest
        from pytest_gmem import ConversionError

        @pytest.mark.enomem("kvm_gmem_convert_compute_work", when={"phase": "forward"})
        def test_mapping(gmem, faults):
            with pytest.raises(ConversionError):
                gmem.convert_private(0, "2M")
            assert len(faults.fired) == 1

        @pytest.mark.enomem("kvm_gmem_convert_compute_work", index=0, when={"phase": "forward"})
        def test_merged(gmem, faults):
            with pytest.raises(ConversionError):
                gmem.convert_private(0, "2M")
            assert faults.fired[0].context == {"index": 0, "phase": "forward"}

        @pytest.mark.speculative_refcount("kvm_gmem_has_safe_refcount", hold=None, when={"phase": "nope"})
        def test_specref_never(gmem, faults):
            gmem.guest_write(0, b"x")
            gmem.convert_private(0, "2M")
            assert faults.fired == []
        """
    )
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=3)
    assert "'when'" not in result.stdout.str() and "when={" not in result.stdout.str()


def test_markers_accumulate_from_class_and_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        pytestmark = pytest.mark.enomem("kvm_gmem_convert_compute_work", nth=3)

        @pytest.mark.enomem("kvm_gmem_convert_compute_work", nth=1)
        def test_both(gmem, faults):
            for _ in range(4):
                try:
                    gmem.convert_private(0, "2M")
                    gmem.convert_shared(0, "2M")
                except OSError:
                    pass
            assert len(faults.fired) == 2
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_tdx_unmap_failure_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import errno
        import pytest
        from pytest_gmem import ConversionError

        TDX = pytest.mark.gmem(size="2M", page_size="2M", vm_type="tdx", init_private=True)

        @TDX
        @pytest.mark.tdx_unmap_failure()
        def test_busy_is_retried(gmem, faults):
            gmem.guest_write(0, b"x")
            gmem.convert_shared(0, "4K")
            assert [f.label() for f in faults.fired] == ["tdh_mem_page_remove:tdx_error#1"]

        @TDX
        @pytest.mark.tdx_unmap_failure(error="fatal")
        def test_fatal_warns(gmem):
            gmem.guest_write(0, b"x")
            with pytest.raises(ConversionError) as info:
                gmem.convert_shared(0, "4K")
            assert info.value.errno == errno.EIO
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)  # the fatal error's KVM_BUG_ON WARN is not allowed
    result.stdout.fnmatch_lines(
        ["*unexpected kernel WARN*", "*KVM_BUG_ON*[[]fault tdh_mem_page_remove:tdx_error#1[]]*"]
    )


def test_gmem_marker_tdx_fatal_policy(pytester: pytest.Pytester) -> None:
    """``gmem(vm_type="tdx", tdx_fatal_policy=...)`` reaches ``host.create_vm``; a bad value
    errors at setup naming the marker and the close match."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gmem(vm_type="tdx", tdx_fatal_policy="leak")
        def test_leak(gmem_vm):
            assert gmem_vm.fatal_policy == "leak"

        @pytest.mark.gmem(vm_type="tdx")
        def test_default(gmem_vm):
            assert gmem_vm.fatal_policy == "bug-vm"

        @pytest.mark.gmem(vm_type="tdx", tdx_fatal_policy="leek")
        def test_bad(gmem_vm):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*invalid tdx_fatal_policy 'leek'*(did you mean 'leak'?)*"])
