"""The scheduler on a real event loop with short intervals: spread, fixed rate, deadlines, reload."""

from __future__ import annotations

import asyncio
import itertools
import time

from healthd.checks.spec import CheckSpec, CheckType, Outcome
from healthd.engine.scheduler import Scheduler

from .fakes import ScriptedRunner, spec


class Collector:
    def __init__(self) -> None:
        self.verdicts: list[tuple[float, CheckSpec, Outcome]] = []

    def __call__(self, s: CheckSpec, o: Outcome) -> None:
        self.verdicts.append((asyncio.get_running_loop().time(), s, o))


async def eventually(cond, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Poll `cond`: generous for a loaded machine, quick when it holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.005)


async def test_first_runs_spread_over_first_interval() -> None:
    runner, got = ScriptedRunner(), Collector()
    specs = [spec(f"10.0.0.{i}", checkinterval=0.4) for i in range(1, 21)]
    sched = Scheduler(runner.run, got)
    t0 = asyncio.get_running_loop().time()
    sched.start(specs)
    dues = sorted(d - t0 for d in (sched.next_due(s) for s in specs) if d is not None)
    assert len(dues) == 20
    assert dues[0] < 0.01 and 0.3 < dues[-1] < 0.4  # spread over the interval, not a burst
    assert max(b - a for a, b in itertools.pairwise(dues)) < 0.03
    await eventually(lambda: {s for _, s in runner.runs} == set(specs))
    await sched.stop()


async def test_fixed_rate_does_not_drift_with_slow_checks() -> None:
    runner, got = ScriptedRunner(), Collector()
    s = spec(checkinterval=0.1)
    runner.delay[s.address] = 0.04
    sched = Scheduler(runner.run, got)
    sched.start([s])
    first_due = sched.next_due(s)
    assert first_due is not None
    await asyncio.sleep(1.05)
    last_due = sched.next_due(s)
    await sched.stop()
    assert last_due is not None
    # the schedule stays on its grid: due times are first_due + k * interval, whatever runs take
    k = (last_due - first_due) / 0.1
    assert abs(k - round(k)) < 1e-6 and round(k) >= 10
    assert len(runner.runs) >= 2


async def test_run_in_flight_skips_ticks_instead_of_stacking() -> None:
    runner, got = ScriptedRunner(), Collector()
    s = spec(checkinterval=0.05, negotiatetimeout=2.0)
    runner.delay[s.address] = 0.22
    sched = Scheduler(runner.run, got)
    sched.start([s])
    await asyncio.sleep(0.8)
    stats = sched.stats()
    await sched.stop()
    spans = [(t, t + 0.22) for t, _ in runner.runs]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 0.01  # never two runs of one identity at once
    assert stats.ticks_skipped > 0
    assert 1 <= len(runner.runs) <= 5  # 0.8 s / 0.22 s per run: never one per 50 ms tick


async def test_deadline_guard_cancels_a_check_that_ignores_its_deadline() -> None:
    got = Collector()

    async def stubborn(s: CheckSpec) -> Outcome:
        await asyncio.sleep(30)  # a check that never enforces s.deadline
        return Outcome(True, "late", 30)

    s = spec(checkinterval=5.0, negotiatetimeout=0.1)
    sched = Scheduler(stubborn, got)
    sched.GRACE = 0.1
    sched.SWEEP = 0.05
    t0 = asyncio.get_running_loop().time()
    sched.start([s])
    await asyncio.sleep(0.6)
    await sched.stop()
    assert len(got.verdicts) == 1
    t, _, outcome = got.verdicts[0]
    assert not outcome.ok and "0.1 s" in outcome.detail
    assert t - t0 < 2.0  # 0.1 deadline + 0.1 grace + a sweep; far from the check's 30 s
    assert sched.stats().overruns == 1


async def test_crashing_check_is_a_failure_and_the_schedule_goes_on() -> None:
    got = Collector()
    calls = 0

    async def buggy(s: CheckSpec) -> Outcome:
        nonlocal calls
        calls += 1
        raise ValueError("bug")

    sched = Scheduler(buggy, got)
    sched.start([spec(checkinterval=0.05)])
    await eventually(lambda: len(got.verdicts) >= 3)
    await sched.stop()
    assert calls >= 3 and len(got.verdicts) == calls
    assert all(not o.ok and "ValueError: bug" in o.detail for _, _, o in got.verdicts)


async def test_numeric_checktype_runs_connects_between_negotiates() -> None:
    runner, got = ScriptedRunner(), Collector()
    s = spec(checkinterval=0.03, connect_every=2)
    sched = Scheduler(runner.run, got)
    sched.start([s])
    for _ in range(300):  # 7 runs take ~0.2 s; wait longer on a loaded machine
        if len(runner.runs) >= 7:
            break
        await asyncio.sleep(0.01)
    await sched.stop()
    types = [r.type for _, r in runner.runs][:7]
    N, C = CheckType.NEGOTIATE, CheckType.CONNECT
    assert types == [N, C, C, N, C, C, N]
    assert all(r.connect_every == 0 for _, r in runner.runs if r.type is C)
    assert {v[1] for v in got.verdicts} == {s}  # every verdict feeds the original identity


async def test_numeric_checktype_negotiates_again_after_a_failure() -> None:
    N, C = CheckType.NEGOTIATE, CheckType.CONNECT
    verdicts = iter([True, True, False, False, True, True, True])  # negotiate, connect, connect...

    async def run(s: CheckSpec) -> Outcome:
        types.append(s.type)
        return Outcome(next(verdicts, True), "", 0.0)

    types: list[CheckType] = []
    sched = Scheduler(run, Collector())
    sched.start([spec(checkinterval=0.02, connect_every=3)])
    for _ in range(500):
        if len(types) >= 7:
            break
        await asyncio.sleep(0.01)
    await sched.stop()
    # N ok, C ok, C fails -> N (fails) -> N again (ok) -> C, C
    assert types[:7] == [N, C, C, N, N, C, C]


async def test_on_and_off_are_never_scheduled() -> None:
    runner, got = ScriptedRunner(), Collector()
    sched = Scheduler(runner.run, got)
    sched.start([spec(type=CheckType.ON, checkinterval=0.01), spec(type=CheckType.OFF, checkinterval=0.01)])
    await asyncio.sleep(0.05)
    await sched.stop()
    assert len(sched) == 0 and runner.runs == []


async def test_update_keeps_unchanged_stops_removed_starts_new() -> None:
    runner, got = ScriptedRunner(), Collector()
    keep, drop, new = (spec(a, checkinterval=0.2) for a in ("10.0.0.2", "10.0.0.3", "10.0.0.4"))
    runner.delay[drop.address] = 0.15
    sched = Scheduler(runner.run, got)
    sched.start([keep, drop])
    await asyncio.sleep(0.11)  # drop's first run (due at 0.1) is in flight now
    due_before = sched.next_due(keep)
    t_update = asyncio.get_running_loop().time()
    assert sched.update([keep, new], spread=0.05) == (1, 1)
    assert sched.next_due(keep) == due_before  # its grid is untouched
    new_due = sched.next_due(new)
    assert new_due is not None and new_due - t_update <= 0.05
    await eventually(lambda: any(s == new for _, s in runner.runs))
    await asyncio.sleep(0.2)  # past the moment drop's in-flight run would have answered
    await sched.stop()
    assert drop not in {s for _, s, _ in got.verdicts}  # the in-flight verdict was dropped
    assert all(t < t_update for t, s in runner.runs if s == drop)
    assert any(s == new for _, s in runner.runs)


async def test_lateness_is_recorded_per_run() -> None:
    runner, got = ScriptedRunner(), Collector()
    sched = Scheduler(runner.run, got)
    sched.start([spec(f"10.0.1.{i}", checkinterval=0.05) for i in range(10)])
    await asyncio.sleep(0.2)
    await sched.stop()
    stats = sched.stats()
    assert 0 < stats.runs_finished <= stats.lateness_samples <= stats.runs_started
    assert 0 <= stats.lateness_median <= stats.lateness_p99 <= stats.lateness_max < 2.0


async def test_identities_due_in_the_same_millisecond_all_run() -> None:
    runner, got = ScriptedRunner(), Collector()
    specs = [spec(f"10.0.2.{i}", checkinterval=0.1) for i in range(200)]
    sched = Scheduler(runner.run, got)
    sched.start(specs)
    per_spec: dict[CheckSpec, int] = {}
    for _ in range(500):  # ~0.25 s normally; up to 5 s on a loaded machine
        per_spec.clear()
        for _, s in runner.runs:
            per_spec[s] = per_spec.get(s, 0) + 1
        if len(per_spec) == len(specs) and min(per_spec.values()) >= 3:
            break
        await asyncio.sleep(0.01)
    await sched.stop()
    assert set(per_spec) == set(specs)
    assert min(per_spec.values()) >= 3  # none lost in a shared bucket


async def test_late_ticks_are_deferred_not_run_in_a_burst() -> None:
    runner, got = ScriptedRunner(), Collector()
    specs = [spec(f"10.0.3.{100 + i}", checkinterval=0.5) for i in range(20)]
    sched = Scheduler(runner.run, got)
    sched.SHED_LAG = 0.05
    sched.start(specs)
    time.sleep(0.3)  # noqa: ASYNC251 - the loop is stuck on purpose: first runs are > 50 ms late
    await asyncio.sleep(0.01)  # the wheel turns once (deferred ticks come back after >= 50 ms)
    stalled = sched.stats()
    assert stalled.ticks_deferred >= 5 and stalled.runs_started < 20  # not all at once
    # every first run still happens (never shed), once the wheel is on time again
    await eventually(lambda: {s for _, s, _ in got.verdicts} == set(specs))
    await sched.stop()
    assert sched.stats().ticks_shed == 0


# -- task-free runs (Scheduler(fast=...), CheckRunner.fast in the daemon) ----------------------

class FakeFastRun:
    def __init__(self, check: FakeFast, done, token) -> None:  # type: ignore[no-untyped-def]
        self.cancelled = False
        self.handle = asyncio.get_running_loop().call_later(check.delay, self._finish, check, done, token)

    def _finish(self, check: FakeFast, done, token) -> None:  # type: ignore[no-untyped-def]
        check.in_flight -= 1
        done(token, Outcome(check.ok, "fast", check.delay))

    def cancel(self) -> None:
        if not self.cancelled and not self.handle.cancelled():
            self.cancelled = True
            self.handle.cancel()


class FakeFast:
    """A task-free check: its verdict comes by callback `delay` seconds after launch."""

    def __init__(self, delay: float = 0.0, ok: bool = True) -> None:
        self.delay, self.ok = delay, ok
        self.launched: list[FakeFastRun] = []
        self.in_flight = 0

    def launch(self, done, token) -> FakeFastRun:  # type: ignore[no-untyped-def]
        self.in_flight += 1
        run = FakeFastRun(self, done, token)
        self.launched.append(run)
        return run


async def test_fast_checks_run_without_tasks_and_report_like_tasks() -> None:
    runner, got = ScriptedRunner(), Collector()
    fast = {spec("10.0.4.1", checkinterval=0.05): FakeFast()}
    plain = spec("10.0.4.2", checkinterval=0.05)
    sched = Scheduler(runner.run, got, fast=fast.get)
    sched.start([*fast, plain])
    await eventually(lambda: len({s for _, s, _ in got.verdicts}) == 2 and len(got.verdicts) >= 6)
    await sched.stop()
    (fast_spec, check), = fast.items()
    assert len(check.launched) >= 2
    assert all(s is plain for _, s in runner.runs)  # the fast identity never went through run()
    assert {o.detail for _, s, o in got.verdicts if s is fast_spec} == {"fast"}
    stats = sched.stats()
    assert stats.runs_finished <= stats.lateness_samples <= stats.runs_started


async def test_a_fast_run_in_flight_skips_ticks_and_stop_cancels_it() -> None:
    runner, got = ScriptedRunner(), Collector()
    check = FakeFast(delay=0.3)
    s = spec("10.0.4.3", checkinterval=0.05)
    sched = Scheduler(runner.run, got, fast={s: check}.get)
    sched.start([s])
    await eventually(lambda: sched.stats().ticks_skipped >= 2)
    assert len(check.launched) == 1 and check.in_flight == 1
    await sched.stop()
    assert check.launched[0].cancelled
    await asyncio.sleep(0.35)
    assert got.verdicts == []  # a cancelled run gives no verdict


async def test_numeric_checktype_connects_go_through_run_while_negotiates_are_fast() -> None:
    runner, got = ScriptedRunner(), Collector()
    s = spec("10.0.4.4", checkinterval=0.03, connect_every=2)
    check = FakeFast()
    sched = Scheduler(runner.run, got, fast={s: check}.get)
    sched.start([s])
    await eventually(lambda: len(got.verdicts) >= 6)
    await sched.stop()
    assert runner.runs and all(r.type is CheckType.CONNECT for _, r in runner.runs)
    assert len(check.launched) >= 2


async def test_a_task_free_check_that_fails_to_start_falls_back_to_run(caplog) -> None:  # type: ignore[no-untyped-def]
    class Broken:
        def launch(self, done, token):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug")

    runner, got = ScriptedRunner(), Collector()
    s = spec("10.0.4.5", checkinterval=0.03)
    sched = Scheduler(runner.run, got, fast={s: Broken()}.get)
    sched.start([s])
    await eventually(lambda: len(got.verdicts) >= 3)  # the wheel kept turning, through run()
    await sched.stop()
    assert all(r is s for _, r in runner.runs) and len(runner.runs) >= 3
    assert "failed to start" in caplog.text
