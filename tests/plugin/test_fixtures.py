"""gmem_host, gmem_vm, gmem, gmem_factory and faults fixtures."""

from __future__ import annotations

import pytest


def test_model_fixtures_fit_together(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_gmem import GuestMemfd, Host, VM

        @pytest.mark.gmem(size="2M", page_size="2M", hugetlb={"2M": 4})
        def test_types(gmem_host, gmem_vm, gmem):
            assert isinstance(gmem_host, Host) and isinstance(gmem_vm, VM) and isinstance(gmem, GuestMemfd)
            assert gmem_host.hugetlb_stats("2M")["total"] == 4

        def test_default_pools_grow_to_fit(gmem_host, gmem):
            assert gmem_host.hugetlb_stats("2M")["total"] == 64
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_gmem_factory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gmem(size="2M", page_size="2M")
        def test_more(gmem_factory, gmem_vm):
            a = gmem_factory()
            b = gmem_factory(size="8K", page_size="4K", init_private=True)
            assert a.ranges() == [(0, 2 << 20, "shared")]
            assert b.ranges() == [(0, 8 << 10, "private")]
            other = gmem_factory.host(revision="rfc-v2")
            c = gmem_factory(vm=gmem_factory.vm(other), size="4K", page_size="4K")
            c.convert_private(0, 4096)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_faults_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import errno
        import pytest
        from pytest_gmem import ConversionError

        def test_inject_and_read_back(gmem, faults):
            with faults.inject("kvm_gmem_convert_compute_work", "ENOMEM", nth=2):
                gmem.convert_private(0, "2M")
                with pytest.raises(ConversionError) as info:
                    gmem.convert_shared(0, "2M")
            assert info.value.errno == errno.ENOMEM
            assert [f.label() for f in faults.fired] == ["kvm_gmem_convert_compute_work:ENOMEM#2"]
            assert faults.reached("kvm_gmem_convert_compute_work") == 2
            assert any(ev.fired for ev in faults.trace)
            assert faults.unfired() == []

        def test_arm_text(gmem, faults):
            faults.arm("kvm_gmem_convert_compute_work=enomem")
            with pytest.raises(ConversionError):
                gmem.convert_private(0, "2M")

        def test_arm_text_error_names_source(gmem, faults):
            with pytest.raises(ValueError, match="faults fixture in test_arm_text_error_names_source"):
                faults.arm("kvm_gmem_convert_compute_wrk=enomem")
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_revision_precedence(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # command line > environment > ini > default; the gmem marker wins over all of them.
    pytester.makeconftest(
        """
        def pytest_gmem_make_host(item, revision):
            print(f"REVISION {item.name} {revision}")
        """
    )
    pytester.makepyfile(
        """
        import pytest

        def test_plain(gmem_host):
            pass

        @pytest.mark.gmem(revision="prealloc")
        def test_marker(gmem_host):
            pass
        """
    )
    assert "REVISION test_plain fixed" in pytester.runpytest("-s").stdout.str()
    pytester.makeini("[pytest]\ngmem_revision = rfc-v2\n")
    assert "REVISION test_plain rfc-v2" in pytester.runpytest("-s").stdout.str()
    monkeypatch.setenv("GMEM_REVISION", "prealloc")
    assert "REVISION test_plain prealloc" in pytester.runpytest("-s").stdout.str()
    out = pytester.runpytest("-s", "--gmem-revision=fixed").stdout.str()
    assert "REVISION test_plain fixed" in out
    assert "REVISION test_marker prealloc" in out


def test_session_fault_from_env_and_ini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        """
        def test_x(gmem, faults):
            try:
                gmem.convert_private(0, "2M")
            except OSError:
                pass
            print("FIRED", [f.point for f in faults.fired])
        """
    )
    pytester.makeini("[pytest]\ngmem_faults = kvm_gmem_convert_compute_work=enomem\n")
    assert "FIRED ['kvm_gmem_convert_compute_work']" in pytester.runpytest("-s").stdout.str()
    monkeypatch.setenv("GMEM_FAULTS", "kvm_gmem_convert_compute_work=off")  # env replaces ini
    assert "FIRED []" in pytester.runpytest("-s").stdout.str()
    out = pytester.runpytest("-s", "--gmem-fault", "kvm_gmem_convert_compute_work=enomem").stdout.str()
    assert "FIRED ['kvm_gmem_convert_compute_work']" in out  # command line replaces env
