"""Scopes: isolation across threads and nested scopes, cleanup, never-fired report, traces."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

import faults

P = faults.declare("t_faults_scopes_p", {"ENOMEM", "speculative_refcount"}, "scoped test point")
Q = faults.declare("t_faults_scopes_q", {"ENOMEM"}, "never armed in some tests")


def hit_in_thread(point: faults.FaultPoint) -> faults.Fired | None:
    out: list[faults.Fired | None] = []
    t = threading.Thread(target=lambda: out.append(point.hit()))
    t.start()
    t.join()
    return out[0]


def test_a_thread_started_inside_a_scope_does_not_see_its_armings(sc: faults.Scope) -> None:
    with faults.inject("t_faults_scopes_p", "ENOMEM", times=None) as a:
        assert hit_in_thread(P) is None
        assert a.hits == 0  # the other thread's hit was not even counted
        assert P.hit() is not None


def test_threads_arm_independently() -> None:
    barrier = threading.Barrier(2)
    results: dict[str, list[bool]] = {}

    def worker(name: str, nth: int) -> None:
        with faults.scope(inherit=False), faults.inject("t_faults_scopes_p", "ENOMEM", nth=nth):
            barrier.wait()
            results[name] = [P.hit() is not None for _ in range(4)]

    threads = [threading.Thread(target=worker, args=("a", 1)),
               threading.Thread(target=worker, args=("b", 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"a": [True, False, False, False], "b": [False, False, True, False]}


def test_asyncio_tasks_keep_the_scope_they_were_created_in(sc: faults.Scope) -> None:
    async def probe() -> bool:
        await asyncio.sleep(0)
        return P.hit() is not None

    async def main() -> tuple[bool, bool]:
        with faults.scope(inherit=False):
            faults.inject("t_faults_scopes_p", "ENOMEM", times=None)
            armed = asyncio.create_task(probe())
            with faults.scope(inherit=False):
                clean = asyncio.create_task(probe())
                return await armed, await clean

    assert asyncio.run(main()) == (True, False)


def test_nested_scope_inherits_parent_armings(sc: faults.Scope) -> None:
    with faults.inject("t_faults_scopes_p", "ENOMEM", times=None):
        with faults.scope():
            assert P.hit() is not None
        with faults.scope(inherit=False):
            assert P.hit() is None


def test_inner_armings_end_with_the_scope_even_when_it_raises(sc: faults.Scope) -> None:
    with pytest.raises(RuntimeError):
        with faults.scope() as inner:
            a = faults.inject("t_faults_scopes_p", "ENOMEM", times=None)
            assert P.hit() is not None
            raise RuntimeError("boom")
    assert not a.live and inner.armings() == []
    assert P.hit() is None
    assert faults.current() is sc


def test_scope_close_disarms_in_reverse_order_and_runs_cleanups() -> None:
    order: list[str] = []
    with faults.scope():
        a = faults.inject("t_faults_scopes_p", "ENOMEM")
        b = faults.inject("t_faults_scopes_q", "ENOMEM")
        a.on_disarm(lambda: order.append("a"))
        b.on_disarm(lambda: order.append("b"))
    assert order == ["b", "a"]


def test_transient_state_is_dropped_via_fired_on_disarm(sc: faults.Scope) -> None:
    refs = {"folio": 1}
    with faults.inject("t_faults_scopes_p", faults.speculative_refcount(refs=2)):
        f = P.hit()
        assert f is not None and isinstance(f.kind, faults.SpeculativeRefcount)
        refs["folio"] += f.kind.refs
        f.on_disarm(lambda: refs.__setitem__("folio", refs["folio"] - 2))
        assert refs["folio"] == 3
    assert refs["folio"] == 1
    # Registering on an arming that already ended runs at once.
    f.on_disarm(lambda: refs.__setitem__("folio", 0))
    assert refs["folio"] == 0


def test_unfired_reports_armings_that_never_fired(sc: faults.Scope) -> None:
    with faults.scope() as s:
        fired = faults.inject("t_faults_scopes_p", "ENOMEM")
        never = faults.inject("t_faults_scopes_q", "ENOMEM", nth=5)
        P.hit()
        Q.hit()
        assert s.unfired() == [never]
    assert s.unfired() == [never]  # still reported after the scope closed
    assert fired.fired == 1 and never.hits == 1


def test_census_and_trace_record_every_hit_and_fault(sc: faults.Scope) -> None:
    with faults.inject("t_faults_scopes_p", "ENOMEM", nth=6):
        assert P.hit(index=0, phase="forward") is None
        assert P.hit_many(3, index=1, phase="forward") is None
        f = P.hit_many(4, index=4, phase="forward")
        Q.hit(index=9)
    assert f is not None and f.offset == 1
    assert sc.census == {"t_faults_scopes_p": 6, "t_faults_scopes_q": 1}
    events = list(sc.trace)
    assert [(e.point, e.nth, e.count, e.fired, e.fired_offset) for e in events] == [
        ("t_faults_scopes_p", 1, 1, None, None),
        ("t_faults_scopes_p", 2, 3, None, None),
        ("t_faults_scopes_p", 5, 2, "ENOMEM", 1),
        ("t_faults_scopes_q", 1, 1, None, None),
    ]
    assert events[2].context == {"index": 4, "phase": "forward"}
    assert [x.label() for x in sc.fired] == ["t_faults_scopes_p:ENOMEM#6"]


def test_non_recording_scope_keeps_no_trace_but_parents_record(sc: faults.Scope) -> None:
    with faults.scope() as inner:
        P.hit()
    assert not inner.trace and not inner.census
    assert sc.census["t_faults_scopes_p"] == 1


def test_listeners_see_each_fired_fault(sc: faults.Scope) -> None:
    got: list[str] = []
    sc.listeners.append(lambda f: got.append(f.label()))
    with faults.inject("t_faults_scopes_p", "ENOMEM", times=2):
        P.hit()
        P.hit()
        P.hit()
    assert got == ["t_faults_scopes_p:ENOMEM#1", "t_faults_scopes_p:ENOMEM#2"]


def test_a_callback_that_raises_leaves_its_hit_on_record(sc: faults.Scope) -> None:
    got: list[str] = []
    sc.listeners.append(lambda f: got.append(f.label()))

    def boom(ctx: object) -> None:
        assert sc.census["t_faults_scopes_p"] == 1  # recorded before the callback runs
        raise RuntimeError("boom")

    with faults.inject("t_faults_scopes_p", faults.callback(boom)) as a, pytest.raises(RuntimeError, match="boom"):
        P.hit(index=7)
    assert a.fired == 1 and a.hits == 1
    assert sc.census["t_faults_scopes_p"] == 1
    assert [(t.nth, t.count, t.context, t.fired) for t in sc.trace] == [(1, 1, {"index": 7}, "callback(boom)")]
    assert [f.context for f in sc.fired] == [{"index": 7}] and got == ["t_faults_scopes_p:callback#1"]


def test_activate_and_deactivate_manage_a_scope_without_a_with_block() -> None:
    s = faults.open_scope(inherit=False, record=True)
    token = faults.activate(s)
    try:
        faults.inject("t_faults_scopes_p", "ENOMEM")
        assert P.hit() is not None
    finally:
        faults.deactivate(token)
        s.close()
    assert faults.current() is not s
    assert P.hit() is None and s.census["t_faults_scopes_p"] == 1


def test_active_tracks_armings_and_recording_scopes() -> None:
    before = faults.points._ACTIVE
    with faults.scope(record=True):
        assert faults.active() and faults.points._ACTIVE == before + 1
        with faults.inject("t_faults_scopes_p", "ENOMEM"):
            assert faults.points._ACTIVE == before + 2
        assert faults.points._ACTIVE == before + 1
    assert faults.points._ACTIVE == before


def test_a_scope_built_directly_keeps_the_active_count_balanced() -> None:
    before = faults.points._ACTIVE
    s = faults.Scope(faults.current(), record=True)
    assert faults.points._ACTIVE == before + 1
    s.close()
    s.close()
    assert faults.points._ACTIVE == before


def test_arming_in_a_closed_scope_is_an_error() -> None:
    with faults.scope(name="done") as s:
        pass
    token = faults.activate(s)
    try:
        with pytest.raises(faults.FaultError, match="scope 'done' is closed"):
            faults.inject("t_faults_scopes_p", "ENOMEM")
    finally:
        faults.deactivate(token)


def test_a_raising_cleanup_does_not_stop_the_others_or_leave_the_scope_open() -> None:
    log: list[str] = []
    with pytest.raises(IndexError), faults.scope(record=True) as s:
        a = faults.inject("t_faults_scopes_p", "ENOMEM", nth=5)
        b = faults.inject("t_faults_scopes_p", "speculative_refcount")
        f = P.hit()
        assert f is not None and f.arming is b
        f.on_disarm(lambda: log.append("first"))
        f.on_disarm(lambda: 1 / 0)
        f.on_disarm(lambda: log.append("third"))
        c = faults.inject("t_faults_scopes_q", "ENOMEM")
        c.on_disarm(lambda: [][0])  # raised first (newest arming first): the one re-raised
        c.on_disarm(lambda: log.append("c"))
    assert log == ["c", "third", "first"]
    assert not (a.live or b.live or c.live) and s.closed and s.armings() == []
    assert P.hit() is None  # the conftest checks that no recording or arming count leaked


def test_a_raising_cleanup_on_disarm_still_runs_the_rest() -> None:
    log: list[str] = []
    with faults.scope():
        a = faults.inject("t_faults_scopes_p", "ENOMEM")
        a.on_disarm(lambda: log.append("first"))
        a.on_disarm(lambda: [][0])
        with pytest.raises(IndexError):
            a.disarm()
        assert log == ["first"] and not a.live
        a.disarm()  # once only


def test_arming_without_a_seed_leaves_the_global_random_stream_alone() -> None:
    state = random.getstate()
    with faults.scope(), faults.inject("t_faults_scopes_p", "ENOMEM", probability=0.5):
        pass
    assert random.getstate() == state


def test_nested_scopes_derive_different_seeds_reproducibly() -> None:
    def seeds() -> list[int]:
        out = []
        with faults.scope(seed=42):
            out.append(faults.inject("t_faults_scopes_p", "ENOMEM", probability=0.5).seed)
            for _ in range(2):
                with faults.scope():
                    out.append(faults.inject("t_faults_scopes_p", "ENOMEM", probability=0.5).seed)
                    with faults.scope():
                        out.append(faults.inject("t_faults_scopes_p", "ENOMEM", probability=0.5).seed)
        return out

    first = seeds()
    assert len(set(first)) == len(first) == 5
    assert seeds() == first  # the same scopes in the same order: the same seeds (replay)


def test_a_scope_given_a_seed_derives_the_same_seeds_wherever_it_is_nested() -> None:
    with faults.scope(seed=7):
        top = faults.inject("t_faults_scopes_p", "ENOMEM").seed
    with faults.scope(), faults.scope(), faults.scope(seed=7):
        assert faults.inject("t_faults_scopes_p", "ENOMEM").seed == top


def test_seed_must_be_an_integer(sc: faults.Scope) -> None:
    with pytest.raises(faults.FaultError, match="seed must be an integer"):
        faults.inject("t_faults_scopes_p", "ENOMEM", seed=[1])  # type: ignore[arg-type]


def test_armed_looks_at_the_current_scope_chain_only() -> None:
    point = faults.get_point("t_faults_scopes_p")
    assert not faults.armed(point, "t_faults_scopes_p")
    with faults.scope(record=True):
        assert not faults.armed(point)  # recording is not arming
        with faults.inject("t_faults_scopes_p", "ENOMEM"):
            assert faults.armed(point) and faults.armed("nothing_like_it", "t_faults_scopes_p")
            with faults.scope(inherit=False):
                assert not faults.armed(point)  # a scope that does not inherit sees nothing
            with faults.scope():
                assert faults.armed(point)
        assert not faults.armed(point)
