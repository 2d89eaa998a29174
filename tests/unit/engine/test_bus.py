"""The engine's plug-in point: observers get the kinds they asked for; per-check events only when asked."""

from __future__ import annotations

import asyncio

from healthd.engine import events
from healthd.engine.bus import EventBus
from healthd.engine.engine import Engine
from healthd.ipvs.model import Dest, DestKey, Entry, Family, Service, ServiceKey, ServiceProtocol

from .fakes import FALLBACK, RecordingReconciler, ScriptedRunner, config, real, virtual

KEY = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.1", 80)


async def until(cond, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_default_subscription_is_every_routine_kind_but_not_per_check_results() -> None:
    bus = EventBus()
    seen: list[object] = []
    bus.subscribe(seen.append)
    assert bus.wants(events.RealChanged) and bus.wants(events.TableApplied)
    assert not bus.wants_checks
    bus.emit(events.Notice("hello"))
    assert seen == [events.Notice("hello")]


def test_named_kinds_only_and_unsubscribe() -> None:
    bus = EventBus()
    notices: list[object] = []
    unsubscribe = bus.subscribe(notices.append, events.Notice)
    bus.emit(events.SyncFailed("x"))
    bus.emit(events.Notice("y"))
    unsubscribe()
    bus.emit(events.Notice("z"))
    assert notices == [events.Notice("y")]
    assert not bus.wants(events.Notice)


def test_a_failing_observer_does_not_stop_the_others() -> None:
    bus = EventBus()
    seen: list[object] = []

    def broken(event: object) -> None:
        raise RuntimeError("observer bug")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    bus.emit(events.Notice("still delivered"))
    assert seen == [events.Notice("still delivered")]


def test_can_serve_means_a_weighted_dest_in_the_table() -> None:
    serving = Entry(Service(KEY), {DestKey("10.0.0.2", 80): Dest("10.0.0.2", 80, weight=1)})
    quiesced = Entry(Service(KEY), {DestKey("10.0.0.2", 80): Dest("10.0.0.2", 80, weight=0)})
    assert events.TableApplied({KEY: serving}, {}, (), 0.0).can_serve(KEY)
    assert not events.TableApplied({KEY: quiesced}, {}, (), 0.0).can_serve(KEY)
    assert not events.TableApplied({}, {}, (), 0.0).can_serve(KEY)


async def test_check_results_are_published_only_while_someone_subscribed() -> None:
    rec, runner = RecordingReconciler(), ScriptedRunner()
    cfg = config(virtual(reals=(real("10.0.0.2"),), fallback=FALLBACK), checkinterval=0.05)
    eng = Engine(cfg, runner, rec)
    routine: list[events.Event] = []
    eng.events.subscribe(routine.append)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    checks: list[events.CheckDone] = []
    eng.events.subscribe(checks.append, events.CheckDone)  # type: ignore[arg-type]
    await until(lambda: len(checks) >= 2)
    await eng.stop(cleanstop=False)
    assert all(c.check.address == "10.0.0.2" and c.outcome.ok for c in checks)
    assert [key for key, _real in checks[0].uses] == [KEY]
    assert not any(isinstance(e, events.CheckDone) for e in routine)
    applied = [e for e in routine if isinstance(e, events.TableApplied)]
    assert applied and applied[-1].can_serve(KEY)
