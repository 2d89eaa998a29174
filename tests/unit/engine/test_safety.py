"""The safety rules as pure functions: agent weights, depoolthreshold, slowstart ramps and drain."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from healthd.checks.agent import AgentReply, AgentState
from healthd.checks.spec import CheckSpec
from healthd.config.model import GlobalSettings, Virtual
from healthd.engine.health import State
from healthd.engine.policy import plan_virtual
from healthd.engine.safety import (
    SLOWSTART_STEPS,
    SafetyState,
    Shaped,
    agent_weight,
    ramp_weight,
    serving_floor,
    shape,
)
from healthd.ipvs.model import DestKey

from .fakes import FALLBACK, real, spec, virtual

U, D, N = State.UP, State.DOWN, State.UNKNOWN


def reals(n: int, weight: int = 10, **check: object) -> tuple:  # type: ignore[type-arg]
    return tuple(real(f"10.0.0.{i + 2}", weight=weight, check=spec(f"10.0.0.{i + 2}", **check))
                 for i in range(n))


def run(
    v: Virtual,
    states: Mapping[str, State | tuple[State, float]],
    *,
    now: float = 100.0,
    previous: SafetyState | None = None,
    maintenance: frozenset[tuple[str, int]] = frozenset(),
    agents: Mapping[str, AgentReply] | None = None,
    conns: Mapping[str, int] | None = None,
    ramp: bool = True,
    fallback_was: bool = False,
) -> Shaped:
    """Plan and shape `v`; states by address (a state, or (state, since))."""
    def info(s: CheckSpec) -> tuple[State, float]:
        value = states.get(s.address, N)
        return value if isinstance(value, tuple) else (value, 0.0)

    plan = plan_virtual(v, GlobalSettings(), lambda s: info(s)[0], maintenance, None, fallback_was)
    return shape(v, plan, info, maintenance, lambda s: (agents or {}).get(s.address),
                 {DestKey(a, 80): c for a, c in (conns or {}).items()}, previous, now, ramp=ramp)


def weights(shaped: Shaped) -> dict[str, int]:
    return {k.address: d.weight for k, d in shaped.entry.dests.items()}


# --- nothing set: the plain policy's table ------------------------------------------------


def test_no_directive_changes_nothing() -> None:
    v = virtual(reals=reals(3), quiescent=True)
    first = run(v, {"10.0.0.2": U, "10.0.0.3": D})
    later = run(v, {"10.0.0.2": U, "10.0.0.3": U, "10.0.0.4": U}, previous=first.state, now=200)
    assert weights(first) == {"10.0.0.2": 10, "10.0.0.3": 0}
    assert weights(later) == {"10.0.0.2": 10, "10.0.0.3": 10, "10.0.0.4": 10}
    assert later.wake_at is None and not later.held and not later.ramping


# --- agent ----------------------------------------------------------------------------------

AGENT_CASES = [
    # name, agent reply, quiescent, expected weight of 10.0.0.2 (None: absent)
    ("50% halves", AgentReply(50, None), False, 5),
    ("75% of 10 rounds up", AgentReply(75, AgentState.READY), False, 8),
    ("1% keeps weight 1", AgentReply(1, None), False, 1),
    ("0% is weight 0", AgentReply(0, None), False, 0),
    ("drain is weight 0", AgentReply(None, AgentState.DRAIN), False, 0),
    ("ready is full weight", AgentReply(None, AgentState.READY), False, 10),
    ("down removes", AgentReply(None, AgentState.DOWN), False, None),
    ("down quiesces", AgentReply(None, AgentState.DOWN), True, 0),
    ("maint removes", AgentReply(None, AgentState.MAINT), False, None),
]


@pytest.mark.parametrize(("name", "reply", "quiescent", "expected"), AGENT_CASES,
                         ids=[c[0] for c in AGENT_CASES])
def test_agent_sets_the_weight_within_the_configured_one(
    name: str, reply: AgentReply, quiescent: bool, expected: int | None
) -> None:
    v = virtual(reals=reals(2, agentport=9999), quiescent=quiescent)
    shaped = run(v, {"10.0.0.2": U, "10.0.0.3": U}, agents={"10.0.0.2": reply})
    assert weights(shaped).get("10.0.0.2") == expected
    assert weights(shaped)["10.0.0.3"] == 10
    assert shaped.agent == {DestKey("10.0.0.2", 80): reply}


def test_agent_never_brings_in_a_failing_real_and_is_ignored_without_agentport() -> None:
    v = virtual(reals=reals(2, agentport=9999))
    ready = {"10.0.0.2": AgentReply(100, AgentState.READY)}
    assert weights(run(v, {"10.0.0.2": D, "10.0.0.3": U}, agents=ready)) == {"10.0.0.3": 10}
    no_agent = virtual(reals=reals(2))
    assert weights(run(no_agent, {"10.0.0.2": U, "10.0.0.3": U}, agents={"10.0.0.2": AgentReply(50)})) \
        == {"10.0.0.2": 10, "10.0.0.3": 10}


def test_agent_weight_arithmetic() -> None:
    assert agent_weight(2, AgentReply(50)) == 1
    assert agent_weight(1, AgentReply(50)) == 1
    assert agent_weight(0, AgentReply(50)) == 0
    assert agent_weight(7, None) == 7


# --- depoolthreshold --------------------------------------------------------------------------


def test_three_of_four_failing_under_half_leave_two_serving() -> None:
    v = virtual(reals=reals(4), depoolthreshold=0.5)
    # 10.0.0.3 failed at t=10, 10.0.0.4 at t=30 (last), 10.0.0.5 at t=20
    shaped = run(v, {"10.0.0.2": U, "10.0.0.3": (D, 10.0), "10.0.0.4": (D, 30.0), "10.0.0.5": (D, 20.0)})
    assert weights(shaped) == {"10.0.0.2": 10, "10.0.0.4": 10}
    assert shaped.held == {DestKey("10.0.0.4", 80)} and shaped.serving_needed == 2


def test_every_real_failing_keeps_the_floor_and_no_fallback() -> None:
    v = virtual(reals=reals(3), depoolthreshold=0.5, fallback=FALLBACK)
    shaped = run(v, {"10.0.0.2": (D, 1.0), "10.0.0.3": (D, 3.0), "10.0.0.4": (D, 2.0)})
    assert weights(shaped) == {"10.0.0.3": 10, "10.0.0.4": 10}  # ceil(0.5 x 3) = 2, the last two to fail
    assert not shaped.fallback_active


def test_threshold_is_not_reached_nothing_held() -> None:
    v = virtual(reals=reals(4), depoolthreshold=0.5)
    shaped = run(v, {"10.0.0.2": U, "10.0.0.3": U, "10.0.0.4": D, "10.0.0.5": D})
    assert weights(shaped) == {"10.0.0.2": 10, "10.0.0.3": 10} and not shaped.held


def test_maintenance_and_agent_down_are_never_held_and_fallback_still_works() -> None:
    v = virtual(reals=reals(2, agentport=9), depoolthreshold=1.0, fallback=FALLBACK)
    shaped = run(v, {"10.0.0.2": U, "10.0.0.3": U}, maintenance=frozenset({("10.0.0.2", 80)}),
                 agents={"10.0.0.3": AgentReply(None, AgentState.DOWN)})
    assert not shaped.held
    assert "10.0.0.2" not in weights(shaped) and "10.0.0.3" not in weights(shaped)


def test_quiescent_reals_beyond_the_floor_stay_at_weight_zero() -> None:
    v = virtual(reals=reals(4), depoolthreshold=0.25, quiescent=True)
    shaped = run(v, {"10.0.0.2": (D, 1.0), "10.0.0.3": (D, 2.0), "10.0.0.4": (D, 3.0), "10.0.0.5": (D, 4.0)})
    assert weights(shaped) == {"10.0.0.2": 0, "10.0.0.3": 0, "10.0.0.4": 0, "10.0.0.5": 10}


def test_serving_floor() -> None:
    assert [serving_floor(0.5, n) for n in range(5)] == [0, 1, 1, 2, 2]
    assert serving_floor(0.0, 4) == 0 and serving_floor(1.0, 3) == 3 and serving_floor(0.3, 10) == 3


# --- slowstart ----------------------------------------------------------------------------------


def test_ramp_steps_reach_full_weight_at_slowstart() -> None:
    seen = [ramp_weight(100, 0.0, t, 9.0)[0] for t in (0, 0.5, 1, 2, 4.5, 8.9, 9, 20)]
    assert seen == [10, 10, 20, 30, 50, 90, 100, 100]
    assert ramp_weight(100, 0.0, 0.0, 9.0)[1] == 1.0
    assert ramp_weight(2, 0.0, 0.0, 10.0) == (1, 10.0)
    assert ramp_weight(1, 0.0, 0.0, 10.0) == (1, None)  # nothing to ramp
    steps = {ramp_weight(1000, 0.0, t / 10, 30.0)[0] for t in range(301)}
    assert len(steps) == SLOWSTART_STEPS


def test_a_real_that_comes_back_ramps_and_others_do_not() -> None:
    v = virtual(reals=reals(2, weight=100), slowstart=9.0)
    start = run(v, {"10.0.0.2": U, "10.0.0.3": U}, ramp=False)  # start-up: no ramp
    assert weights(start) == {"10.0.0.2": 100, "10.0.0.3": 100}
    down = run(v, {"10.0.0.2": U, "10.0.0.3": D}, previous=start.state, now=110)
    back = run(v, {"10.0.0.2": U, "10.0.0.3": U}, previous=down.state, now=120)
    assert weights(back) == {"10.0.0.2": 100, "10.0.0.3": 10}
    assert back.wake_at == 121.0 and back.ramping == {DestKey("10.0.0.3", 80): 100}
    mid = run(v, {"10.0.0.2": U, "10.0.0.3": U}, previous=back.state, now=124.5)
    assert weights(mid)["10.0.0.3"] == 50
    done = run(v, {"10.0.0.2": U, "10.0.0.3": U}, previous=mid.state, now=129.0)
    assert weights(done)["10.0.0.3"] == 100 and done.wake_at is None and not done.ramping


def test_a_real_added_by_reload_ramps_from_its_first_pass() -> None:
    one = virtual(reals=reals(1, weight=10), slowstart=10.0)
    before = run(one, {"10.0.0.2": U}, ramp=False)
    two = virtual(reals=reals(2, weight=10), slowstart=10.0)
    waiting = run(two, {"10.0.0.2": U}, previous=before.state, now=200)  # 10.0.0.3 not checked yet
    joined = run(two, {"10.0.0.2": U, "10.0.0.3": U}, previous=waiting.state, now=201)
    assert weights(waiting) == {"10.0.0.2": 10}
    assert weights(joined) == {"10.0.0.2": 10, "10.0.0.3": 1}


def test_held_reals_do_not_ramp() -> None:
    v = virtual(reals=reals(2, weight=10), slowstart=10.0, depoolthreshold=1.0)
    start = run(v, {"10.0.0.2": U, "10.0.0.3": U}, ramp=False)
    failing = run(v, {"10.0.0.2": U, "10.0.0.3": (D, 5.0)}, previous=start.state, now=110)
    assert weights(failing) == {"10.0.0.2": 10, "10.0.0.3": 10}


# --- drain ------------------------------------------------------------------------------------------


def test_a_real_removed_by_reload_drains_until_its_connections_end() -> None:
    old = virtual(reals=reals(2), drain=30.0)
    new = virtual(reals=reals(1), drain=30.0)
    start = run(old, {"10.0.0.2": U, "10.0.0.3": U}, ramp=False)
    leaving = run(new, {"10.0.0.2": U}, previous=start.state, now=100)
    assert weights(leaving) == {"10.0.0.2": 10, "10.0.0.3": 0}
    assert leaving.wake_at == 130.0
    busy = run(new, {"10.0.0.2": U}, previous=leaving.state, now=110, conns={"10.0.0.3": 2})
    assert weights(busy) == {"10.0.0.2": 10, "10.0.0.3": 0}
    idle = run(new, {"10.0.0.2": U}, previous=busy.state, now=111, conns={"10.0.0.3": 0})
    assert weights(idle) == {"10.0.0.2": 10}
    assert not idle.state.draining


def test_drain_ends_when_time_is_up_even_with_connections() -> None:
    v = virtual(reals=reals(2), drain=5.0)
    start = run(v, {"10.0.0.2": U, "10.0.0.3": U}, ramp=False)
    maint = frozenset({("10.0.0.3", 80)})
    leaving = run(v, {"10.0.0.2": U, "10.0.0.3": U}, previous=start.state, now=100, maintenance=maint)
    assert weights(leaving) == {"10.0.0.2": 10, "10.0.0.3": 0}
    assert leaving.state.draining[DestKey("10.0.0.3", 80)].reason == "maintenance"
    late = run(v, {"10.0.0.2": U, "10.0.0.3": U}, previous=leaving.state, now=105, maintenance=maint,
               conns={"10.0.0.3": 7})
    assert weights(late) == {"10.0.0.2": 10}


def test_a_failing_real_does_not_drain() -> None:
    v = virtual(reals=reals(2), drain=30.0)
    start = run(v, {"10.0.0.2": U, "10.0.0.3": U}, ramp=False)
    failed = run(v, {"10.0.0.2": U, "10.0.0.3": D}, previous=start.state, now=100)
    assert weights(failed) == {"10.0.0.2": 10} and not failed.state.draining


def test_agent_maint_drains_agent_down_does_not() -> None:
    v = virtual(reals=reals(2, agentport=9), drain=30.0)
    start = run(v, {"10.0.0.2": U, "10.0.0.3": U}, ramp=False)
    maint = run(v, {"10.0.0.2": U, "10.0.0.3": U}, previous=start.state, now=100,
                agents={"10.0.0.3": AgentReply(None, AgentState.MAINT)})
    down = run(v, {"10.0.0.2": U, "10.0.0.3": U}, previous=start.state, now=100,
               agents={"10.0.0.3": AgentReply(None, AgentState.DOWN)})
    assert weights(maint) == {"10.0.0.2": 10, "10.0.0.3": 0}
    assert weights(down) == {"10.0.0.2": 10}


def test_a_draining_real_that_comes_back_serves_again() -> None:
    v = virtual(reals=reals(2), drain=30.0)
    start = run(v, {"10.0.0.2": U, "10.0.0.3": U}, ramp=False)
    maint = frozenset({("10.0.0.3", 80)})
    leaving = run(v, {"10.0.0.2": U, "10.0.0.3": U}, previous=start.state, now=100, maintenance=maint)
    back = run(v, {"10.0.0.2": U, "10.0.0.3": U}, previous=leaving.state, now=101, conns={"10.0.0.3": 3})
    assert weights(back) == {"10.0.0.2": 10, "10.0.0.3": 10} and not back.state.draining


def test_turning_slowstart_on_by_reload_ramps_no_real_that_already_serves() -> None:
    before = run(virtual(reals=reals(2)), {"10.0.0.2": U, "10.0.0.3": U}, ramp=False)
    assert not before.state.tracked  # nothing set: the plain plan, nothing recorded
    after = run(virtual(reals=reals(2), slowstart=10.0), {"10.0.0.2": U, "10.0.0.3": U},
                previous=before.state, now=200)
    assert weights(after) == {"10.0.0.2": 10, "10.0.0.3": 10} and not after.ramping
    down = run(virtual(reals=reals(2), slowstart=10.0), {"10.0.0.2": U, "10.0.0.3": D},
               previous=after.state, now=201)
    back = run(virtual(reals=reals(2), slowstart=10.0), {"10.0.0.2": U, "10.0.0.3": U},
               previous=down.state, now=202)
    assert weights(back)["10.0.0.3"] == 1  # from then on, a real that comes back ramps


def test_a_held_real_stays_held_rather_than_shuffling_to_a_later_failure() -> None:
    v = virtual(reals=reals(4), depoolthreshold=0.5)
    first = run(v, {"10.0.0.2": U, "10.0.0.3": (D, 10.0), "10.0.0.4": (D, 20.0), "10.0.0.5": U})
    assert weights(first) == {"10.0.0.2": 10, "10.0.0.5": 10} and not first.held
    one = run(v, {"10.0.0.2": U, "10.0.0.3": (D, 10.0), "10.0.0.4": (D, 20.0), "10.0.0.5": (D, 30.0)},
              previous=first.state)
    assert one.held == {DestKey("10.0.0.5", 80)}
    all_down = {"10.0.0.2": (D, 40.0), "10.0.0.3": (D, 10.0), "10.0.0.4": (D, 20.0), "10.0.0.5": (D, 30.0)}
    two = run(v, all_down, previous=one.state)
    assert two.held == {DestKey("10.0.0.5", 80), DestKey("10.0.0.2", 80)}  # .5 kept, .2 failed last
    again = run(v, {**all_down, "10.0.0.4": (D, 50.0)}, previous=two.state)
    assert again.held == two.held  # a later failure does not push a held real out


def test_nothing_new_is_held_while_a_real_waits_for_its_first_verdict() -> None:
    v = virtual(reals=reals(4), depoolthreshold=0.5)
    start = run(v, {"10.0.0.2": (D, 1.0), "10.0.0.3": (D, 2.0), "10.0.0.4": N, "10.0.0.5": N})
    assert weights(start) == {} and not start.held
    known = run(v, {"10.0.0.2": (D, 1.0), "10.0.0.3": (D, 2.0), "10.0.0.4": (D, 3.0), "10.0.0.5": (D, 4.0)},
                previous=start.state)
    assert weights(known) == {"10.0.0.4": 10, "10.0.0.5": 10}
