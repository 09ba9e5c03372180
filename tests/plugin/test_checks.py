"""The after-test check: host.check() and the WARN log, with allow_warn and check=False.

Driven through a scripted host supplied by the plugin's own ``pytest_gmem_make_host`` hook
(see conftest.py), plus one end-to-end case on the real model."""

from __future__ import annotations

import pytest


def test_unexpected_warn_fails_the_test(fake_host: pytest.Pytester) -> None:
    fake_host.makepyfile(
        """
        def test_warns(gmem_host):
            gmem_host.warn("kvm_gmem_convert_range", "rollback failed")
        """
    )
    result = fake_host.runpytest()
    result.assert_outcomes(failed=1)  # failed, not errored: the check is part of the call
    result.stdout.fnmatch_lines(
        [
            "*gmem: unexpected kernel WARN after test_unexpected_warn_fails_the_test.py::test_warns*",
            "*WARN at kvm_gmem_convert_range: rollback failed*",
            "state map:",
            "FAKE STATE MAP",
            "fault trace:",
            "reproduce: pytest test_unexpected_warn_fails_the_test.py::test_warns --gmem-seed=*",
        ]
    )


def test_allow_warn_matches_message_or_location(fake_host: pytest.Pytester) -> None:
    fake_host.makepyfile(
        """
        import pytest

        @pytest.mark.allow_warn("rollback")
        def test_message(gmem_host):
            gmem_host.warn("kvm_gmem_convert_range", "rollback failed")

        @pytest.mark.allow_warn(r"^kvm_gmem_convert_range$")
        def test_location(gmem_host):
            gmem_host.warn("kvm_gmem_convert_range", "anything")

        @pytest.mark.allow_warn("something else")
        def test_other(gmem_host):
            gmem_host.warn("kvm_gmem_convert_range", "rollback failed")
        """
    )
    result = fake_host.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED *::test_other - *"])


def test_broken_invariant_fails_with_state_map(fake_host: pytest.Pytester) -> None:
    fake_host.makepyfile(
        """
        def test_broken(gmem_host):
            gmem_host.break_invariant("folio 0x0 refcount 3, expected 2")
        """
    )
    result = fake_host.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*gmem: 1 broken invariant(s) after *::test_broken:*", "*folio 0x0 refcount 3, expected 2*", "FAKE STATE MAP"]
    )


def test_check_false_skips_the_check(fake_host: pytest.Pytester) -> None:
    fake_host.makepyfile(
        """
        import pytest

        @pytest.mark.gmem(check=False)
        def test_unchecked(gmem_host):
            gmem_host.break_invariant("expected by this test")
            gmem_host.warn("x", "y")
        """
    )
    fake_host.runpytest().assert_outcomes(passed=1)


def test_failing_body_keeps_its_own_error_and_shows_the_check(fake_host: pytest.Pytester) -> None:
    fake_host.makepyfile(
        """
        def test_both(gmem_host):
            gmem_host.warn("somewhere", "a warning")
            assert 1 == 2
        """
    )
    result = fake_host.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 2*", "*Captured gmem check call*", "*WARN at somewhere: a warning*"])


def test_warn_during_teardown_is_an_error(fake_host: pytest.Pytester) -> None:
    fake_host.makepyfile(
        """
        import pytest

        @pytest.fixture
        def warns_later(gmem_host):
            yield gmem_host
            gmem_host.warn("kvm_gmem_release", "leaked folio")

        def test_t(warns_later):
            pass
        """
    )
    result = fake_host.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_t*", "*WARN at kvm_gmem_release: leaked folio*"])


def test_hosts_are_closed(fake_host: pytest.Pytester) -> None:
    fake_host.makepyfile(
        """
        HOSTS = []

        def test_make(gmem_host, gmem_factory):
            HOSTS.extend([gmem_host, gmem_factory.host()])

        def test_closed():
            assert [h.closed for h in HOSTS] == [True, True]
        """
    )
    fake_host.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_rfc_v2_rollback_warn_on_the_real_model(pytester: pytest.Pytester) -> None:
    # ENOMEM while rolling back a failed conversion only WARNs in rfc-v2: unexpected -> failure;
    # allowed with allow_warn (the state may still be inconsistent, so check=False there).
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gmem(revision="rfc-v2", size="4M", page_size="2M", init_private=True)
        @pytest.mark.fault("kvm_gmem_shareability_store=enomem@times=inf")
        def test_unexpected(gmem):
            with pytest.raises(OSError):
                gmem.convert_shared(0, "4M")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*gmem: *after *::test_unexpected*", "state map:", "fault trace:", "*FIRED*"])


def test_allow_warn_does_not_match_the_rendered_fault_text(fake_host: pytest.Pytester) -> None:
    # "(while fault ... was active)" is the plugin's wording, not the WARN's location or message.
    fake_host.makepyfile(
        """
        import pytest

        @pytest.mark.allow_warn("was active")
        def test_rendered(gmem_host):
            gmem_host.warn("kvm_gmem_convert_range", "rollback failed")
            gmem_host.warnings[-1].fault = "kvm_gmem_shareability_store:ENOMEM#1"
        """
    )
    result = fake_host.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*WARN at kvm_gmem_convert_range: rollback failed (while fault * was active)*"])


def test_a_factory_host_is_checked_once(fake_host: pytest.Pytester) -> None:
    # gmem_factory.host() registers its host once: one broken invariant is reported once, and
    # the state is described once
    fake_host.makepyfile(
        """
        def test_broken(gmem_factory):
            gmem_factory.host().break_invariant("folio 0x0 refcount 3, expected 2")
        """
    )
    result = fake_host.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*gmem: 1 broken invariant(s) after *::test_broken:*"])
    # (the short summary repeats the whole message when CI is set: count the failure section)
    report = result.stdout.str().split("short test summary info")[0]
    assert report.count("FAKE STATE MAP") == 1
