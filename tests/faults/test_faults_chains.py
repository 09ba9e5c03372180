"""fail-rs chains (faults.inject_chain / the text grammar): counted terms, off, percentages."""

from __future__ import annotations

import pytest

import faults
from faults import Off, Term, enomem, errno_kind

P = faults.declare("t_faults_chains_p", {"ENOMEM", "EIO"}, "test point for chains")


def kinds_of(n: int) -> list[str | None]:
    return [None if (f := P.hit()) is None else f.kind.name for _ in range(n)]


def test_two_off_then_one_enomem_fires_on_the_third_hit(sc: faults.Scope) -> None:
    with faults.inject_chain("t_faults_chains_p", [Term(Off(), 2), Term(enomem(), 1)]) as a:
        assert kinds_of(6) == [None, None, "ENOMEM", None, None, None]
        assert (a.hits, a.fired) == (6, 1)


def test_chain_inside_a_batch(sc: faults.Scope) -> None:
    with faults.inject_chain("t_faults_chains_p", [Term(Off(), 2), Term(enomem(), 1)]):
        f = P.hit_many(5, index=40)
        assert f is not None and (f.offset, f.nth, f.context["index"]) == (2, 3, 42)
        assert P.hit_many(5, index=43) is None


def test_chain_split_across_batches_and_single_hits(sc: faults.Scope) -> None:
    with faults.inject_chain("t_faults_chains_p", [Term(Off(), 5), Term(enomem(), 2),
                                                   Term(Off(), 1), Term(errno_kind("EIO"), 1)]):
        assert P.hit_many(2) is None
        assert P.hit() is None
        f = P.hit_many(4)  # hits 4..7: hit 6 is the first ENOMEM
        assert f is not None and f.offset == 2 and f.kind.name == "ENOMEM" and f.nth == 6
        assert kinds_of(4) == ["ENOMEM", None, "EIO", None]


def test_unlimited_term_never_runs_out(sc: faults.Scope) -> None:
    with faults.inject_chain("t_faults_chains_p", [Term(Off(), 1), Term(enomem())]):
        assert kinds_of(4) == [None, "ENOMEM", "ENOMEM", "ENOMEM"]


def test_unlimited_off_never_fires(sc: faults.Scope) -> None:
    with faults.inject_chain("t_faults_chains_p", [Term(Off()), Term(enomem())]) as a:
        assert P.hit_many(50) is None
        assert kinds_of(3) == [None] * 3
        assert a.fired == 0


def test_terms_are_copied_per_arming(sc: faults.Scope) -> None:
    """Reusing one list of terms (a module constant) must not carry counts between armings."""
    terms = [Term(Off(), 1), Term(enomem(), 1)]
    for _ in range(2):
        with faults.inject_chain("t_faults_chains_p", terms):
            assert kinds_of(3) == [None, "ENOMEM", None]
    assert terms[0].remaining == 1 and terms[1].remaining == 1


def test_probabilistic_term_is_seeded() -> None:
    def run(seed: int) -> list[str | None]:
        with faults.scope(inherit=False), faults.inject_chain(
            "t_faults_chains_p", [Term(Off(), 2), Term(enomem(), None, probability=0.5)], seed=seed
        ):
            return kinds_of(40)

    a = run(3)
    assert a == run(3)
    assert a[:2] == [None, None]
    assert 5 <= a.count("ENOMEM") <= 35


def test_percentage_then_fallback_term(sc: faults.Scope) -> None:
    # 0%: the first term is never taken, so the second takes every hit.
    with faults.inject_chain("t_faults_chains_p",
                             [Term(errno_kind("EIO"), None, probability=0.0), Term(enomem(), 2)]):
        assert kinds_of(3) == ["ENOMEM", "ENOMEM", None]


def test_two_chains_on_one_point_both_count_every_hit(sc: faults.Scope) -> None:
    with faults.inject_chain("t_faults_chains_p", [Term(Off(), 1), Term(enomem(), 1)]), \
            faults.inject_chain("t_faults_chains_p", [Term(Off(), 1), Term(errno_kind("EIO"), 1)]):
        # Both want hit 2; the first armed wins it, the second fires on the next hit.
        assert kinds_of(4) == [None, "ENOMEM", "EIO", None]


def test_describe(sc: faults.Scope) -> None:
    with faults.inject_chain("t_faults_chains_p", [Term(Off(), 2), Term(enomem(), 1)]) as a:
        assert a.describe() == "t_faults_chains_p: 2*off->1*ENOMEM"


def test_terms_take_kind_names_and_check_their_values(sc: faults.Scope) -> None:
    with faults.inject_chain("t_faults_chains_p", [faults.Term("off", 1), faults.Term("enomem", 1)]):
        assert [P.hit() is not None for _ in range(3)] == [False, True, False]
    assert faults.Term("ENOMEM") == faults.Term(faults.enomem())
    for count in (0, -1, 5.0, True, "2"):
        with pytest.raises(faults.FaultError, match="a term's count must be an integer >= 1"):
            faults.Term(faults.enomem(), count)  # type: ignore[arg-type]
    for prob in (5.0, -0.1, "0.5", True, float("nan")):
        with pytest.raises(faults.FaultError, match="a term's probability must be a number between 0 and 1"):
            faults.Term(faults.enomem(), None, prob)  # type: ignore[arg-type]
    with pytest.raises(faults.UnknownKind, match="did you mean 'ENOMEM'"):
        faults.Term("ENOMEN")
