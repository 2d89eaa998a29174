"""The safety extensions through the engine: scripted checks and agents, a recording table, real time."""

from __future__ import annotations

import asyncio

from healthd.checks.agent import AgentReply, AgentState
from healthd.checks.spec import CheckSpec
from healthd.engine import events
from healthd.engine.engine import Engine
from healthd.ipvs.model import Dest, DestKey, Family, ServiceKey, ServiceProtocol

from .fakes import RecordingReconciler, ScriptedRunner, config, real, spec, virtual

KEY = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.1", 80)
IV = 0.05


def r(addr: str, weight: int = 10, **kw):  # type: ignore[no-untyped-def]
    return real(addr, weight=weight, check=spec(addr, checkinterval=IV, **kw))


async def until(cond, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class Events(list):  # type: ignore[type-arg]
    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self if isinstance(e, kind)]


async def test_depoolthreshold_keeps_two_of_four_and_says_so() -> None:
    rec, runner, seen = RecordingReconciler(), ScriptedRunner(), Events()
    reals = tuple(r(f"10.0.0.{i}") for i in (2, 3, 4, 5))
    eng = Engine(config(virtual(reals=reals, depoolthreshold=0.5)), runner, rec, on_event=seen.append)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    runner.ok["10.0.0.3"] = False
    await until(lambda: "10.0.0.3:80" not in rec.weights(KEY))
    runner.ok["10.0.0.4"] = False
    await until(lambda: "10.0.0.4:80" not in rec.weights(KEY))
    runner.ok["10.0.0.5"] = False  # the third failure: 10.0.0.5, the last to fail, is held in
    await until(lambda: bool(seen.of(events.DepoolHeld)))
    await eng.flush()
    assert rec.weights(KEY) == {"10.0.0.2:80": 10, "10.0.0.5:80": 10}
    held = seen.of(events.DepoolHeld)[0]
    assert (held.real.address, held.held, held.serving_needed, held.failing) == ("10.0.0.5", True, 2, 3)
    snap = eng.snapshot().virtuals[0]
    assert snap.held_by_depoolthreshold == 1 and snap.serving_needed == 2
    assert [x.real for x in snap.reals if x.held_by_depoolthreshold] == ["10.0.0.5:80"]
    runner.ok["10.0.0.3"] = True  # one recovers: the floor is met without holding
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 10, "10.0.0.3:80": 10})
    assert [e.held for e in seen.of(events.DepoolHeld)] == [True, False]
    await eng.stop(cleanstop=False)


async def test_slowstart_ramps_a_returning_real_in_steps() -> None:
    rec, runner = RecordingReconciler(), ScriptedRunner()
    eng = Engine(config(virtual(reals=(r("10.0.0.2", 100), r("10.0.0.3", 100)), slowstart=0.9)), runner, rec)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    await eng.flush()
    assert rec.weights(KEY) == {"10.0.0.2:80": 100, "10.0.0.3:80": 100}  # no ramp at start-up
    runner.ok["10.0.0.3"] = False
    await until(lambda: "10.0.0.3:80" not in rec.weights(KEY))
    calls_before = len(rec.calls)
    runner.ok["10.0.0.3"] = True
    await until(lambda: rec.weights(KEY).get("10.0.0.3:80") == 100)
    ramp = [d[KEY].dests[DestKey("10.0.0.3", 80)].weight for _, d, _ in rec.calls[calls_before:]
            if DestKey("10.0.0.3", 80) in d[KEY].dests]
    assert ramp[0] == 10 and ramp == sorted(ramp) and len(set(ramp)) >= 5, ramp
    assert all(d[KEY].dests[DestKey("10.0.0.2", 80)].weight == 100 for _, d, _ in rec.calls[calls_before:])
    await eng.stop(cleanstop=False)


async def test_a_real_removed_by_reload_drains_until_the_kernel_counts_no_connection() -> None:
    rec, runner, seen = RecordingReconciler(), ScriptedRunner(), Events()
    both = config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3")), drain=30.0))
    eng = Engine(both, runner, rec, on_event=seen.append, drain_poll=0.05)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    await eng.flush()
    gone = DestKey("10.0.0.3", 80)
    rec.backend.active[KEY, str(gone)] = 2  # the kernel counts two connections to it
    await eng.reload(config(virtual(reals=(r("10.0.0.2"),), drain=30.0)))
    await eng.flush()
    assert rec.weights(KEY) == {"10.0.0.2:80": 10, "10.0.0.3:80": 0}
    await asyncio.sleep(0.3)
    assert rec.weights(KEY) == {"10.0.0.2:80": 10, "10.0.0.3:80": 0}
    assert eng.snapshot().virtuals[0].draining_removed == ("10.0.0.3:80",)
    rec.backend.active[KEY, str(gone)] = 0
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 10})
    drains = seen.of(events.DrainChanged)
    assert [(e.real, e.draining) for e in drains] == [("10.0.0.3:80", True), ("10.0.0.3:80", False)]
    assert drains[1].reason == "no active connection left" and drains[1].seconds >= 0.3
    await eng.stop(cleanstop=False)


async def test_drain_time_is_up_with_connections_left() -> None:
    rec, runner = RecordingReconciler(), ScriptedRunner()
    cfg = config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3")), drain=0.4))
    eng = Engine(cfg, runner, rec, drain_poll=0.05)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    await eng.flush()
    rec.backend.active[KEY, "10.0.0.3:80"] = 5
    start = asyncio.get_running_loop().time()
    await eng.reload(config(virtual(reals=(r("10.0.0.2"),), drain=0.4)))
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 10})
    assert asyncio.get_running_loop().time() - start >= 0.35
    await eng.stop(cleanstop=False)


async def test_agent_answer_halves_the_weight_and_silence_restores_it() -> None:
    rec, runner = RecordingReconciler(), ScriptedRunner()
    replies: dict[str, AgentReply | None] = {"10.0.0.2": AgentReply(50)}

    async def agent(s: CheckSpec) -> AgentReply | None:
        return replies.get(s.address)

    reals = (r("10.0.0.2", agentport=9999), r("10.0.0.3", agentport=9999))
    eng = Engine(config(virtual(reals=reals)), runner, rec, agent=agent)
    await eng.start()
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 5, "10.0.0.3:80": 10})
    assert eng.snapshot().virtuals[0].reals[0].agent == "50%"
    replies["10.0.0.2"] = AgentReply(None, AgentState.DRAIN)
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 0, "10.0.0.3:80": 10})
    replies["10.0.0.2"] = None  # no answer: the health check's verdict alone
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 10, "10.0.0.3:80": 10})
    runner.ok["10.0.0.3"] = False
    replies["10.0.0.3"] = AgentReply(100, AgentState.READY)  # an agent cannot bring in a failing real
    await until(lambda: rec.weights(KEY) == {"10.0.0.2:80": 10})
    await eng.stop(cleanstop=False)


async def test_successcount_keeps_a_flapping_real_out() -> None:
    rec, runner = RecordingReconciler(), ScriptedRunner()
    eng = Engine(config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3", successcount=3)))), runner, rec)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    runner.ok["10.0.0.3"] = False
    await until(lambda: "10.0.0.3:80" not in rec.weights(KEY))
    flips = 0
    start = len(rec.calls)
    while flips < 12:  # pass, fail, pass, ... once per check
        before = len([s for _, s in runner.runs if s.address == "10.0.0.3"])
        await until(lambda b=before: len([s for _, s in runner.runs if s.address == "10.0.0.3"]) > b)
        runner.ok["10.0.0.3"] = not runner.ok["10.0.0.3"]
        flips += 1
    assert all(DestKey("10.0.0.3", 80) not in d[KEY].dests for _, d, _ in rec.calls[start:])
    runner.ok["10.0.0.3"] = True
    await until(lambda: "10.0.0.3:80" in rec.weights(KEY))
    await eng.stop(cleanstop=False)


async def test_reload_keeps_a_ramp_and_a_hold_of_unchanged_reals() -> None:
    rec, runner = RecordingReconciler(), ScriptedRunner()
    reals = (r("10.0.0.2", 100), r("10.0.0.3", 100))
    cfg = config(virtual(reals=reals, slowstart=2.0))
    eng = Engine(cfg, runner, rec)
    await eng.start()
    await asyncio.wait_for(eng.first_round.wait(), 10)
    runner.ok["10.0.0.3"] = False
    await until(lambda: "10.0.0.3:80" not in rec.weights(KEY))
    runner.ok["10.0.0.3"] = True
    await until(lambda: 0 < rec.weights(KEY).get("10.0.0.3:80", 0) < 100)
    mid = rec.weights(KEY)["10.0.0.3:80"]
    await eng.reload(config(virtual(reals=(*reals, r("10.0.0.4", 100)), slowstart=2.0)))
    await eng.flush()
    after = rec.weights(KEY)["10.0.0.3:80"]
    assert mid <= after < 100  # the ramp goes on where it was, it does not restart nor jump
    await until(lambda: rec.weights(KEY).get("10.0.0.3:80") == 100)
    await eng.stop(cleanstop=False)


def test_dest_counters_do_not_make_a_table_differ() -> None:
    assert Dest("10.0.0.2", 80, active_conns=3) == Dest("10.0.0.2", 80)
