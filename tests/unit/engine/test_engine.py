"""The engine end to end with a scripted check runner and a recording reconciler."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from healthd.checks.spec import CheckType
from healthd.engine import events
from healthd.engine.engine import Engine
from healthd.engine.health import State
from healthd.ipvs.model import Dest, DestKey, Entry, Family, Forward, Service, ServiceKey, ServiceProtocol

from .fakes import FALLBACK, RecordingReconciler, ScriptedRunner, config, real, spec, virtual

KEY = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.1", 80)
KEY2 = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.9", 80)
IV = 0.1  # check interval of these tests


def r(addr: str, weight: int = 1, **kw) -> object:  # type: ignore[no-untyped-def]
    return real(addr, weight=weight, check=spec(addr, checkinterval=IV, **kw))


async def until(cond, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class Events(list):  # type: ignore[type-arg]
    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self if isinstance(e, kind)]


async def test_start_adopts_kernel_then_follows_verdicts() -> None:
    kernel = {KEY: Entry(Service(KEY), {DestKey("10.0.0.2", 80): Dest("10.0.0.2", 80, Forward.MASQ, 9),
                                        DestKey("10.0.0.77", 80): Dest("10.0.0.77", 80, Forward.MASQ, 1)})}
    rec = RecordingReconciler(kernel)
    runner = ScriptedRunner()
    runner.ok["10.0.0.3"] = False
    runner.delay["10.0.0.2"] = 0.05
    eng = Engine(config(virtual(reals=(r("10.0.0.2", 5), r("10.0.0.3", 3)))), runner, rec)
    await eng.start()
    # first sync: the kernel's entry for 10.0.0.2 keeps weight 9; the stranger 10.0.0.77 is gone
    assert rec.calls[0][1][KEY].dests.keys() == {DestKey("10.0.0.2", 80)}
    assert rec.weights(KEY) == {"10.0.0.2:80": 9}
    assert not eng.first_round.is_set()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    assert rec.weights(KEY) == {"10.0.0.2:80": 5}
    await eng.stop(cleanstop=False)


async def test_never_checked_real_gets_no_traffic_until_it_passes() -> None:
    rec = RecordingReconciler()
    runner = ScriptedRunner()
    runner.delay["10.0.0.3"] = 0.08  # its first verdict comes late
    eng = Engine(config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3")))), runner, rec)
    await eng.start()
    assert rec.weights(KEY) == {}
    await asyncio.wait_for(eng.first_round.wait(), 10)
    assert rec.weights(KEY) == {"10.0.0.2:80": 1, "10.0.0.3:80": 1}
    # at no point was 10.0.0.3 in a synced table before its first verdict
    first_ok = next(t for t, s in runner.runs if s.address == "10.0.0.3") + 0.08
    for t, desired, _ in rec.calls:
        if t < first_ok:
            assert DestKey("10.0.0.3", 80) not in desired[KEY].dests
    await eng.stop(cleanstop=False)


async def test_changes_are_coalesced_and_events_name_every_virtual() -> None:
    shared = spec("10.0.0.2", checkinterval=IV)
    reals = tuple(r(f"10.0.0.{i}") for i in range(3, 13))
    v1 = virtual("10.0.0.1", reals=(real("10.0.0.2", check=shared), *reals))
    v2 = virtual("10.0.0.9", reals=(real("10.0.0.2", check=shared, weight=7),))
    rec, runner, seen = RecordingReconciler(), ScriptedRunner(), Events()
    eng = Engine(config(v1, v2), runner, rec, on_event=seen.append, coalesce=0.25)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    assert len(rec.weights(KEY)) == 11 and rec.weights(KEY2) == {"10.0.0.2:80": 7}
    # the shared check runs once per interval, not once per virtual
    t_window = asyncio.get_running_loop().time()
    await asyncio.sleep(3 * IV)
    shared_runs = [t for t, s in runner.runs if s == shared and t >= t_window]
    assert 1 <= len(shared_runs) <= 4  # ~3; twice that if each virtual ran its own
    changed = seen.of(events.RealChanged)
    assert {(e.virtual.label, e.new) for e in changed if e.real.address == "10.0.0.2"} == {
        ("10.0.0.1:80", State.UP), ("10.0.0.9:80", State.UP)}
    # now every real fails within one interval (0.1 s < coalesce): one or two syncs, not eleven
    calls_before = len(rec.calls)
    for i in range(2, 13):
        runner.ok[f"10.0.0.{i}"] = False
    await until(lambda: rec.weights(KEY) == {} and rec.weights(KEY2) == {})
    assert len(rec.calls) - calls_before <= 2
    await eng.stop(cleanstop=False)


async def test_failurecount_needs_consecutive_failures() -> None:
    rec, runner = RecordingReconciler(), ScriptedRunner()
    eng = Engine(config(virtual(reals=(r("10.0.0.2", failurecount=3),))), runner, rec)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    runner.ok["10.0.0.2"] = False
    t0 = asyncio.get_running_loop().time()
    await until(lambda: rec.weights(KEY) == {})
    assert asyncio.get_running_loop().time() - t0 >= 2 * IV  # not on the first failure
    await eng.stop(cleanstop=False)


def command_script(tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "fallback.log"
    path = tmp_path / "fb"
    path.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path), log


async def test_fallback_server_and_command_follow_the_reals(tmp_path: Path) -> None:
    cmd, log = command_script(tmp_path)
    rec, runner, seen = RecordingReconciler(), ScriptedRunner(), Events()
    runner.ok["10.0.0.2"] = False
    v = virtual(reals=(r("10.0.0.2"),), fallback=FALLBACK, fallbackcommand=f"{cmd} --flag")
    eng = Engine(config(v), runner, rec, on_event=seen.append)
    await eng.start()
    await until(lambda: rec.weights(KEY) == {"127.0.0.1:80": 1})
    runner.ok["10.0.0.2"] = True
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 1})
    await until(lambda: len(seen.of(events.CommandFinished)) == 2)
    await eng.stop(cleanstop=False)
    assert log.read_text().splitlines() == ["--flag start 10.0.0.1:80 tcp", "--flag stop 10.0.0.1:80 tcp"]
    assert [e.active for e in seen.of(events.FallbackChanged)] == [True, False]


async def test_stop_runs_fallbackcommand_stop_and_cleanstop_removes(tmp_path: Path) -> None:
    cmd, log = command_script(tmp_path)
    rec, runner = RecordingReconciler(), ScriptedRunner(default=False)
    keep = virtual("10.0.0.9", reals=(r("10.0.0.3"),), cleanstop=False)
    v = virtual(reals=(r("10.0.0.2"),), fallbackcommand=cmd)
    eng = Engine(config(v, keep), runner, rec)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    await until(lambda: log.exists())
    await eng.stop()  # per-virtual cleanstop
    assert KEY not in rec.table and KEY2 in rec.table
    assert log.read_text().splitlines() == ["start 10.0.0.1:80 tcp", "stop 10.0.0.1:80 tcp"]


async def test_no_fallbackcommand_when_reals_are_up_at_start(tmp_path: Path) -> None:
    cmd, log = command_script(tmp_path)
    rec, runner = RecordingReconciler(), ScriptedRunner()
    eng = Engine(config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3")), fallbackcommand=cmd)), runner, rec)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    await asyncio.sleep(0.1)
    await eng.stop(cleanstop=True)
    assert not log.exists()
    assert KEY not in rec.table


async def test_reload_keeps_state_adds_and_removes() -> None:
    rec, runner, seen = RecordingReconciler(), ScriptedRunner(), Events()
    a, b, c = r("10.0.0.2"), r("10.0.0.3"), r("10.0.0.4")
    runner.delay["10.0.0.4"] = 0.05
    old = config(virtual(reals=(a, b)), virtual("10.0.0.9", reals=(b,)))
    eng = Engine(old, runner, rec, on_event=seen.append)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    before = len(seen.of(events.RealChanged))
    await eng.reload(config(virtual(reals=(a, c))))
    await eng.flush()
    # the dropped virtual is removed, the kept real never left, the new one waits for its check
    assert KEY2 not in rec.table
    assert rec.weights(KEY) == {"10.0.0.2:80": 1}
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 1, "10.0.0.4:80": 1})
    new_events = seen.of(events.RealChanged)[before:]
    assert [(e.real.address, e.new) for e in new_events] == [("10.0.0.4", State.UP)]
    assert b.check not in eng.scheduler and eng.health.state(a.check) is State.UP
    await eng.stop(cleanstop=False)


async def test_maintenance_file_takes_real_out_and_back(tmp_path: Path) -> None:
    rec, runner, seen = RecordingReconciler(), ScriptedRunner(), Events()
    cfg = config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3"))), maintenancedir=str(tmp_path))
    eng = Engine(cfg, runner, rec, on_event=seen.append, maintenance_period=0.05,
                 resolver=lambda a: {"10.0.0.3": "web3.example.org"}.get(a))
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    assert rec.weights(KEY) == {"10.0.0.2:80": 1, "10.0.0.3:80": 1}
    (tmp_path / "web3").touch()
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 1})
    (tmp_path / "web3").unlink()
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 1, "10.0.0.3:80": 1})
    assert [e.in_maintenance for e in seen.of(events.MaintenanceChanged)] == [True, False]
    await eng.stop(cleanstop=False)


async def test_failed_sync_is_reported_and_retried() -> None:
    failures = 3
    def fail() -> bool:
        nonlocal failures
        failures -= 1
        return 0 <= failures < 2  # the start-up sync works, the next two fail
    rec, runner, seen = RecordingReconciler(fail=fail), ScriptedRunner(), Events()
    eng = Engine(config(virtual(reals=(r("10.0.0.2"),))), runner, rec, on_event=seen.append, retry=0.05)
    await eng.start()
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 1})
    assert len(seen.of(events.SyncFailed)) == 2 and eng.last_sync_error is None
    await eng.stop(cleanstop=False)


async def test_snapshot_reports_weight_state_and_last_result() -> None:
    rec, runner = RecordingReconciler(), ScriptedRunner()
    runner.ok["10.0.0.3"] = False
    eng = Engine(config(virtual(reals=(r("10.0.0.2", 4), r("10.0.0.3")), quiescent=True)), runner, rec)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    snap = eng.snapshot()
    assert snap.first_round_done and snap.last_sync_error is None
    (vs,) = snap.virtuals
    assert vs.service == "TCP 10.0.0.1:80" and vs.in_table and not vs.fallback_active
    up, down = vs.reals
    assert (up.real, up.state, up.weight, up.last_ok, up.last_detail) == ("10.0.0.2:80", "up", 4, True, "ok")
    assert (down.state, down.weight, down.consecutive_failures, down.last_detail) == ("down", 0, 1, "refused")
    assert up.check == "negotiate http 10.0.0.2:80" and up.last_latency is not None
    assert snap.scheduler.identities == 2 and snap.scheduler.runs_finished >= 2
    await eng.stop(cleanstop=False)


async def test_start_raises_when_the_table_cannot_be_applied() -> None:
    rec = RecordingReconciler(fail=lambda: True)
    eng = Engine(config(virtual(reals=(r("10.0.0.2"),))), ScriptedRunner(), rec)
    try:
        await eng.start()
    except RuntimeError as exc:
        assert "netlink said no" in str(exc)
    else:
        raise AssertionError("start() should fail")


async def test_drift_is_repaired_periodically() -> None:
    rec, runner = RecordingReconciler(), ScriptedRunner()
    resyncs = 0

    async def resync() -> None:
        nonlocal resyncs
        resyncs += 1

    rec.resync = resync  # type: ignore[attr-defined]
    eng = Engine(config(virtual(reals=(r("10.0.0.2"),))), runner, rec, resync_interval=0.05)
    await eng.start()
    await until(lambda: resyncs >= 2)
    await eng.stop(cleanstop=False)


async def test_first_round_without_any_scheduled_check(tmp_path: Path) -> None:
    (tmp_path / "10.0.0.3").touch()  # in maintenance from the start
    rec, seen = RecordingReconciler(), Events()
    on = real("10.0.0.2", check=spec("10.0.0.2", type=CheckType.ON))
    on3 = real("10.0.0.3", check=spec("10.0.0.3", type=CheckType.ON))
    eng = Engine(config(virtual(reals=(on, on3)), maintenancedir=str(tmp_path)), ScriptedRunner(), rec,
                 on_event=seen.append)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    assert rec.weights(KEY) == {"10.0.0.2:80": 1}
    maintenance = [(e.real.address, e.in_maintenance) for e in seen.of(events.MaintenanceChanged)]
    assert maintenance == [("10.0.0.3", True)]
    await eng.stop(cleanstop=False)
