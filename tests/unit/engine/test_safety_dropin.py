"""Drop-in: an ldirectord.cf without healthd's extension directives gives exactly the table it gave before.

Every shared config (../shared/data/configs) and the repository's etc/ha.d/ldirectord.cf
is run through sequences of health states, maintenance and a reload that removes a
real, with the safety layer's state carried from step to step as the engine carries
it; each step's table must be the plain policy's, and nothing may wait on a timer.
The engine itself is then run on each file with flapping checks: the table it applies
is the plain policy's table for the health it has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

import pytest

from healthd.checks.spec import CheckSpec, Outcome
from healthd.config import Config, load
from healthd.config.model import Virtual
from healthd.engine.engine import Engine
from healthd.engine.health import State
from healthd.engine.policy import desired_table, plan_virtual, service_key
from healthd.engine.safety import SafetyState, shape
from tests.unit.config.conftest import ROOT, fake_resolver, shared_dir

from .fakes import RecordingReconciler

CONFIGS = [*sorted((shared_dir() / "data" / "configs").glob("*.cf")), ROOT / "etc" / "ha.d" / "ldirectord.cf"]
EXTENSIONS = {"successcount": 1, "fastinterval": 0.0, "agentport": 0}


def load_config(path: Path) -> Config:
    return load(str(path), resolver=fake_resolver)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_no_extension_is_on_in_an_ldirectord_file(path: Path) -> None:
    config = load_config(path)
    for virtual in config.virtuals:
        assert (virtual.slowstart, virtual.drain, virtual.depoolthreshold) == (0.0, 0.0, 0.0)
        for real in virtual.reals:
            assert dataclasses.replace(real.check, **EXTENSIONS) == real.check


Step = tuple[dict[CheckSpec, State], frozenset[tuple[str, int]]]


def _steps(virtual: Virtual, rng: random.Random) -> list[Step]:
    specs = [r.check for r in virtual.reals]
    ids = [(r.address, r.port) for r in virtual.reals]
    steps = [({s: State.UNKNOWN for s in specs}, frozenset())]
    for state in (State.UP, State.DOWN, State.UP):
        steps.append(({s: state for s in specs}, frozenset()))
    for i in range(len(specs)):  # each real down in turn, then in maintenance in turn
        steps.append(({s: State.DOWN if j == i else State.UP for j, s in enumerate(specs)}, frozenset()))
        steps.append(({s: State.UP for s in specs}, frozenset({ids[i]})))
    for _ in range(30):
        steps.append(({s: rng.choice(list(State)) for s in specs},
                      frozenset(x for x in ids if rng.random() < 0.2)))
    return steps


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shaping_an_ldirectord_file_changes_nothing(path: Path) -> None:
    config = load_config(path)
    rng = random.Random(path.name)
    for quiescent in (False, True):
        for virtual in config.virtuals:
            virtual = dataclasses.replace(virtual, quiescent=quiescent)
            previous: SafetyState | None = None
            fallback = False
            now = 1000.0
            for index, (states, maintenance) in enumerate(_steps(virtual, rng)):
                since = {s: float(rng.randrange(100)) for s in states}
                plan = plan_virtual(virtual, config.settings, lambda s, st=states: st.get(s, State.UNKNOWN),
                                    maintenance, None, fallback)
                shaped = shape(virtual, plan, lambda s, st=states, si=since: (st.get(s, State.UNKNOWN),
                                                                              si.get(s, 0.0)),
                               maintenance, lambda s: None, {}, previous, now, ramp=index > 0)
                assert shaped.entry == plan.entry and dict(shaped.entry.dests) == dict(plan.entry.dests)
                assert shaped.fallback_active == plan.fallback_active
                assert shaped.wake_at is None and not shaped.held and not shaped.ramping
                previous, fallback, now = shaped.state, shaped.fallback_active, now + 1.0
            # a reload that removes the first real: it leaves at once, as it does under ldirectord
            fewer = dataclasses.replace(virtual, reals=virtual.reals[1:])
            up = lambda s: State.UP  # noqa: E731
            plan = plan_virtual(fewer, config.settings, up, frozenset(), None, False)
            shaped = shape(fewer, plan, lambda s: (State.UP, 0.0), frozenset(), lambda s: None, {},
                           previous, now)
            assert shaped.entry == plan.entry and not shaped.state.draining


class Flapping:
    """Each real passes or fails at random, seeded by the file: a stand-in for CheckRunner.

    While the gate is closed, runs wait (no verdict arrives), so the table can be compared
    with the health it was planned from."""

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)
        self.gate = asyncio.Event()
        self.gate.set()

    async def start(self, services: object = None) -> None:
        pass

    async def close(self) -> None:
        pass

    async def run(self, spec: CheckSpec) -> Outcome:
        await self.gate.wait()
        ok = self.rng.random() < 0.6
        return Outcome(ok, "ok" if ok else "refused", 0.0)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
async def test_the_engine_applies_the_plain_policy_table(path: Path) -> None:
    config = load_config(path)
    fast = dataclasses.replace(config, virtuals=tuple(
        dataclasses.replace(v, reals=tuple(dataclasses.replace(
            r, check=dataclasses.replace(r.check, checkinterval=0.02)) for r in v.reals))
        for v in config.virtuals))
    rec, runner = RecordingReconciler(), Flapping(path.name)
    eng = Engine(fast, runner, rec, freeze_gc=False, resync_interval=None, coalesce=0.005)
    await eng.start()
    try:
        await asyncio.wait_for(eng.first_round.wait(), 10)
        for _ in range(10):
            runner.gate.set()
            await asyncio.sleep(0.05)
            runner.gate.clear()
            await asyncio.sleep(0.01)  # verdicts of runs already past the gate land
            await eng.flush()
            plain = desired_table(fast, eng.health.state, frozenset(), {},
                                  [k for k, p in eng._plans.items() if p.fallback_active])
            assert eng.applied == plain.table
        assert all(service_key(v) in eng.applied for v in fast.virtuals)
    finally:
        await eng.stop(cleanstop=False)
