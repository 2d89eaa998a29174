"""The scheduler's extensions: fastinterval brings the next run forward; the agent is asked beside a run."""

from __future__ import annotations

import asyncio

from healthd.checks.agent import AgentReply
from healthd.checks.spec import CheckSpec, Outcome
from healthd.engine.health import HealthBook, next_interval
from healthd.engine.scheduler import Scheduler

from .fakes import ScriptedRunner, spec


async def test_fastinterval_rechecks_a_pending_failure_quickly() -> None:
    """checkinterval 1 s, failurecount 3, fastinterval 0.1 s: down within ~0.3 s of the first failure."""
    s = spec(checkinterval=1.0, failurecount=3, fastinterval=0.1)
    book = HealthBook()
    book.track([s])
    runner = ScriptedRunner()
    runner.ok[s.address] = False
    down_at: list[float] = []
    went_down = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_outcome(spec_: CheckSpec, outcome: Outcome) -> None:
        t = book.record(spec_, outcome)
        if t is not None and t.new == "down":
            down_at.append(loop.time())
            went_down.set()

    sched = Scheduler(runner.run, on_outcome, interval_of=lambda sp: next_interval(sp, book.get(sp)))
    sched.start([s])
    await asyncio.wait_for(went_down.wait(), 5)
    first = runner.runs[0][0]
    assert down_at[0] - first < 0.6, f"down {down_at[0] - first:.2f} s after the first failure"
    # decided: back on the 1 s grid
    due = sched.next_due(s)
    assert due is not None and due - loop.time() > 0.5
    await sched.stop()


async def test_without_fastinterval_failures_wait_for_checkinterval() -> None:
    s = spec(checkinterval=0.5, failurecount=3)
    book = HealthBook()
    book.track([s])
    runner = ScriptedRunner(default=False)
    sched = Scheduler(runner.run, lambda sp, o: book.record(sp, o),
                      interval_of=lambda sp: next_interval(sp, book.get(sp)))
    sched.start([s])
    await asyncio.sleep(0.8)
    await sched.stop()
    assert len(runner.runs) <= 2  # at 0 and 0.5 s


async def test_agent_is_asked_beside_every_run_and_answers_first() -> None:
    with_agent = spec("10.0.0.2", checkinterval=0.1, agentport=9999)
    without = spec("10.0.0.3", checkinterval=0.1)
    runner = ScriptedRunner()
    asked: list[CheckSpec] = []
    order: list[tuple[str, str]] = []

    async def agent(s: CheckSpec) -> AgentReply | None:
        asked.append(s)
        await asyncio.sleep(0.02)
        return AgentReply(50)

    sched = Scheduler(runner.run, lambda s, o: order.append(("outcome", s.address)),
                      agent=agent, on_agent=lambda s, r: order.append((f"agent {r}", s.address)))
    sched.start([with_agent, without])
    await asyncio.sleep(0.35)
    await sched.stop()
    assert asked and all(s == with_agent for s in asked)
    mine = [what for what, address in order if address == "10.0.0.2"]
    assert mine[:2] == ["agent 50%", "outcome"]
    assert all(what == "outcome" for what, address in order if address == "10.0.0.3")


async def test_a_stuck_agent_does_not_outlive_the_deadline_guard() -> None:
    s = spec(checkinterval=0.2, checktimeout=0.1, negotiatetimeout=0.1, agentport=9999)
    runner = ScriptedRunner()
    replies: list[AgentReply | None] = []

    async def stuck(_s: CheckSpec) -> AgentReply | None:
        await asyncio.sleep(60)
        return None

    sched = Scheduler(runner.run, lambda sp, o: None, agent=stuck, on_agent=lambda sp, r: replies.append(r))
    sched.start([s])
    await asyncio.sleep(1.2)
    await sched.stop()
    assert replies and replies[0] is None  # the guard cancelled it: no answer, the schedule goes on
