"""Traffic safety on top of the plain policy: agent weights, depoolthreshold, slowstart and drain.

A pure function of the virtual, the plan healthd.engine.policy made for it, what
the engine knows of each real (health, agent answer, active connections), the
state this function returned last time, and the time, passed in. No I/O and no
clock: the engine calls `shape` after `plan_virtual` on every replan, and again
at `wake_at` (the next ramp step or drain deadline) when nothing else changed.

Every rule is off unless its directive is set (all are healthd extensions), so
an ldirectord.cf without them gives exactly the plain policy's table.

- agent (`agentport`): an up real's agent may lower its weight to a share of the
  configured one (`50%`: half, rounded up), set it to 0 (`drain`), take it out as
  a failed check would (`down`) or as maintenance would (`maint`). It never
  brings in a real whose check fails. No answer: no effect.
- depoolthreshold=F: while fewer than ceil(F x reals) reals serve (weight > 0),
  reals that are out *because their check failed* are kept in at their
  configured weight, the ones that failed last first ("held"); a real already
  held stays held while the floor needs it, so traffic does not shuffle between
  failing reals. Reals out by maintenance or by their agent are the operator's
  decision and never held. As the fallback does, it acts on evidence: while a
  real of the virtual waits for its first verdict, no new real is held. A held
  real counts as serving, so the fallback stays off while one is held.
- slowstart=S: a real that starts serving again (back from down, quiesced or
  maintenance, or added by a reload) gets a growing share of its weight: at most
  SLOWSTART_STEPS steps from weight/steps up to weight, the full weight S seconds
  after it started. Not at start-up (every real starts together, and adopted
  ones already carry traffic), and never for a held real.
- drain=S: a real that leaves the table for a reason other than a failed check
  (removed from the file by a reload, maintenancedir, agent `maint`) stays at
  weight 0 until the kernel counts no active connection to it or S seconds have
  passed. A real whose check fails does *not* drain: it leaves at once (or stays
  at weight 0 with quiescent=yes, ldirectord's own way of keeping its connections):
  a dead server's connections are gone already, and an operator who wants a
  receive-string failure to keep existing connections has quiescent for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from healthd.checks.agent import AgentReply, AgentState
from healthd.checks.spec import CheckSpec, CheckType
from healthd.config.model import Real, Virtual
from healthd.engine.health import State
from healthd.engine.policy import Maintenance, VirtualPlan, dest_port, service_key
from healthd.ipvs.model import Dest, DestKey, Entry, ServiceKey

SLOWSTART_STEPS = 10  # a ramp changes the weight at most this many times

# spec -> (state, when that state began); `when` orders failures for depoolthreshold
HealthInfo = Callable[[CheckSpec], tuple[State, float]]
AgentLookup = Callable[[CheckSpec], "AgentReply | None"]


@dataclass(frozen=True, slots=True)
class Draining:
    """A real on its way out: weight 0 until its connections end or `until`."""

    dest: Dest  # at weight 0
    since: float
    until: float
    reason: str  # "removed from the configuration", "maintenance", "agent said maint"


@dataclass(frozen=True, slots=True)
class SafetyState:
    """What `shape` remembers about one virtual between two calls (kept across reloads)."""

    present: Mapping[DestKey, Dest] = field(default_factory=dict)  # reals in the last shaped entry
    ramps: Mapping[DestKey, float] = field(default_factory=dict)  # real -> when its ramp started
    draining: Mapping[DestKey, Draining] = field(default_factory=dict)
    held: frozenset[DestKey] = frozenset()  # held in by depoolthreshold
    # False when the virtual had no safety directive: `present` was not recorded, so nothing is
    # known of what served before (a reload that turns slowstart on starts no ramp)
    tracked: bool = True


UNTRACKED = SafetyState(tracked=False)


@dataclass(frozen=True, slots=True)
class Shaped:
    entry: Entry
    fallback_active: bool
    state: SafetyState
    held: frozenset[DestKey] = frozenset()  # in the table only because of depoolthreshold
    ramping: Mapping[DestKey, int] = field(default_factory=dict)  # real -> its full weight, while ramping
    agent: Mapping[DestKey, AgentReply] = field(default_factory=dict)  # what each real's agent said
    wake_at: float | None = None  # when the result changes with no other input (ramp step, drain end)
    serving_needed: int = 0  # depoolthreshold's floor, in reals


def ramp_weight(target: int, started: float, now: float, slowstart: float) -> tuple[int, float | None]:
    """The weight `now` of a ramp to `target` that began at `started`, and when it next changes."""
    steps = min(SLOWSTART_STEPS, target)
    elapsed = now - started
    if steps <= 1 or slowstart <= 0 or elapsed >= slowstart:
        return target, None
    step_length = slowstart / (steps - 1)
    k = max(0, int(elapsed / step_length))
    if k >= steps - 1:
        return target, None
    return math.ceil(target * (k + 1) / steps), started + (k + 1) * step_length


def agent_weight(weight: int, reply: AgentReply | None) -> int:
    """An up real's weight after its agent spoke: a share of `weight`, never more."""
    if reply is None:
        return weight
    if reply.state is AgentState.DRAIN:
        return 0
    if reply.percent is not None:
        return math.ceil(weight * reply.percent / 100)
    return weight


def serving_floor(threshold: float, reals: int) -> int:
    """How many reals depoolthreshold keeps serving: ceil(threshold x reals)."""
    if threshold <= 0:
        return 0
    return min(reals, math.ceil(threshold * reals - 1e-9))


def real_dest_key(virtual: Virtual, real: Real, key: ServiceKey | None = None) -> DestKey:
    """Where `real` sits in the virtual's IPVS entry (`key`: the virtual's service key, if known)."""
    return DestKey(real.address, dest_port(key or service_key(virtual), real.forward, real.port))


def enabled(virtual: Virtual) -> bool:
    """Whether any safety rule applies to the virtual (else `shape` returns the plan as it is)."""
    return bool(virtual.slowstart or virtual.drain or virtual.depoolthreshold
                or any(real.check.agentport for real in virtual.reals))


def shape(
    virtual: Virtual,
    plan: VirtualPlan,
    health: HealthInfo,
    maintenance: Maintenance,
    agents: AgentLookup,
    conns: Mapping[DestKey, int],
    previous: SafetyState | None,
    now: float,
    *,
    ramp: bool = True,
) -> Shaped:
    """Apply the safety rules to `plan`. `conns`: active connections per real as last read (absent:
    not known yet); `ramp`: False while the first round of checks runs (no slow start at start-up)."""
    if not enabled(virtual) and (previous is None or not (previous.ramps or previous.draining)):
        return Shaped(plan.entry, plan.fallback_active, UNTRACKED)  # the plain policy, at no cost
    prev = previous or UNTRACKED
    skey = plan.entry.service.key
    dests: dict[DestKey, Dest] = dict(plan.entry.dests)
    real_keys: dict[DestKey, Real] = {}
    replies: dict[DestKey, AgentReply] = {}
    no_drain: set[DestKey] = set()  # out because a check (or the agent's `down`) says so
    failed: list[tuple[bool, float, int, DestKey, Real]] = []  # held-in candidates, best first
    pending = False  # a real waits for its first verdict
    wake: list[float] = []

    for index, real in enumerate(virtual.reals):
        dkey = real_dest_key(virtual, real, skey)
        real_keys[dkey] = real
        state, since = health(real.check)
        in_maintenance = (real.address, real.port) in maintenance
        reply = agents(real.check) if real.check.agentport else None
        if reply is not None:
            replies[dkey] = reply
        if in_maintenance:
            continue
        if state is State.DOWN:
            no_drain.add(dkey)
            failed.append((dkey not in prev.held, -since, index, dkey, real))
            continue
        current = dests.get(dkey)
        if state is State.UNKNOWN and current is None and real.check.type is not CheckType.OFF:
            pending = True
        if state is not State.UP or current is None or reply is None:
            continue
        if reply.state is AgentState.DOWN or reply.state is AgentState.MAINT:
            if reply.state is AgentState.DOWN:
                no_drain.add(dkey)
            if virtual.quiescent:
                dests[dkey] = replace(current, weight=0)
            else:
                del dests[dkey]
        else:
            dests[dkey] = replace(current, weight=agent_weight(real.weight, reply))

    # depoolthreshold: keep the reals that failed last, up to the floor
    needed = serving_floor(virtual.depoolthreshold, len(virtual.reals))
    held: set[DestKey] = set()
    fallback_active = plan.fallback_active
    if needed:
        serving = sum(1 for k, d in dests.items() if k in real_keys and d.weight > 0)
        for new, _since, _index, dkey, real in sorted(failed):
            if serving >= needed:
                break
            if real.weight <= 0 or (new and pending):
                continue
            dests[dkey] = Dest(dkey.address, dkey.port, real.forward, real.weight, real.upper,
                               real.lower)
            held.add(dkey)
            serving += 1
        if held and fallback_active:
            fallback_active = False
            for fkey in [k for k in dests if k not in real_keys]:
                del dests[fkey]

    # slowstart: a real that starts serving ramps up
    ramps: dict[DestKey, float] = {}
    ramping: dict[DestKey, int] = {}
    if virtual.slowstart > 0:
        for dkey, dest in list(dests.items()):
            if dkey not in real_keys or dest.weight <= 0 or dkey in held:
                continue
            started = prev.ramps.get(dkey)
            was_serving = (old := prev.present.get(dkey)) is not None and old.weight > 0
            if started is None and ramp and prev.tracked and not was_serving:
                started = now
            if started is None:
                continue
            weight, next_step = ramp_weight(dest.weight, started, now, virtual.slowstart)
            if next_step is None:
                continue
            ramps[dkey] = started
            ramping[dkey] = dest.weight
            dests[dkey] = replace(dest, weight=weight)
            wake.append(next_step)

    # drain: a real leaving for any reason but a failed check goes to weight 0 first
    draining: dict[DestKey, Draining] = {}
    if virtual.drain > 0:
        for dkey, old in prev.present.items():
            if dkey in dests or dkey in no_drain or dkey in prev.draining:
                continue
            real = real_keys.get(dkey)
            if real is None:
                reason = "removed from the configuration"
            elif (real.address, real.port) in maintenance:
                reason = "maintenance"
            else:
                reason = "agent said maint"
            draining[dkey] = Draining(replace(old, weight=0), now, now + virtual.drain, reason)
        for dkey, drain in prev.draining.items():
            if dkey not in dests and dkey not in no_drain:
                draining[dkey] = drain
        for dkey, drain in list(draining.items()):
            if conns.get(dkey, 1) <= 0 or now >= drain.until:
                del draining[dkey]
                continue
            dests[dkey] = drain.dest
            wake.append(drain.until)

    present = {k: d for k, d in dests.items() if k in real_keys or k in draining}
    state = SafetyState(present, ramps, draining, frozenset(held))
    return Shaped(
        entry=Entry(plan.entry.service, dests),
        fallback_active=fallback_active,
        state=state,
        held=frozenset(held),
        ramping=ramping,
        agent=replies,
        wake_at=min(wake) if wake else None,
        serving_needed=needed,
    )


