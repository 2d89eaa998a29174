"""The engine with the real Reconciler on the in-memory table: a real changing state reaches the
table through `Reconciler.update` (no dump), and drift made by hand is repaired on the resync clock,
which keeps time even while the table changes every few milliseconds."""

from __future__ import annotations

import asyncio

from healthd.engine import events
from healthd.engine.engine import Engine
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.model import DeleteDest, DestKey, Family, ServiceKey
from healthd.ipvs.reconcile import Reconciler
from healthd.vocab import ServiceProtocol

from .fakes import ScriptedRunner, config, real, spec, virtual

KEY = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.1", 80)
OTHER = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.9", 80)
IV = 0.02


def r(addr: str, **kw) -> object:  # type: ignore[no-untyped-def]
    return real(addr, check=spec(addr, checkinterval=IV), **kw)


async def until(cond, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class Counting(Reconciler):
    def __init__(self, table: MemoryTable) -> None:
        super().__init__(table)
        self.updates = 0
        self.full = 0

    async def update(self, desired, changed):  # type: ignore[no-untyped-def]
        self.updates += 1
        return await super().update(desired, changed)

    async def sync(self, desired, managed):  # type: ignore[no-untyped-def]
        self.full += 1
        return await super().sync(desired, managed)


def weights(table: dict, key: ServiceKey) -> dict[str, int]:  # type: ignore[type-arg]
    entry = table.get(key)
    return {} if entry is None else {str(k): d.weight for k, d in entry.dests.items()}


async def test_a_flip_is_applied_without_a_dump_and_drift_is_repaired_on_the_slow_clock() -> None:
    table, runner, seen = MemoryTable(), ScriptedRunner(), []
    rec = Counting(table)
    cfg = config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3"), r("10.0.0.4", weight=3))),
                 virtual("10.0.0.9", reals=(r("10.0.0.5"),)))
    engine = Engine(cfg, runner, rec, resync_interval=0.3, coalesce=0.002, on_event=seen.append)
    await engine.start()
    try:
        await asyncio.wait_for(engine.first_round.wait(), 10)
        await engine.flush()
        assert rec.full == 1 and rec.dumps == 1  # start-up: the one dump (adoption) and a full diff
        assert weights(await table.dump(), KEY) == {"10.0.0.2:80": 1, "10.0.0.3:80": 1, "10.0.0.4:80": 3}

        # one real flips: applied by update, with no dump, and only its service was looked at
        runner.ok["10.0.0.3"] = False
        await until(lambda: "10.0.0.3:80" not in weights(engine.applied, KEY))
        assert weights(await table.dump(), KEY) == {"10.0.0.2:80": 1, "10.0.0.4:80": 3}
        assert rec.updates >= 1 and rec.full == 1

        # the other real flaps all the time (a sync every few ms); someone deletes a real by hand
        async def flap() -> None:
            while True:
                runner.ok["10.0.0.2"] = not runner.ok.get("10.0.0.2", True)
                await asyncio.sleep(IV)

        flapper = asyncio.create_task(flap())
        try:
            dumps = rec.dumps
            await table.apply(DeleteDest(KEY, DestKey("10.0.0.4", 80)))
            await table.apply(DeleteDest(OTHER, DestKey("10.0.0.5", 80)))
            await until(lambda: engine.resyncs >= 1, within=5)  # not starved by the flapping
            await until(lambda: DestKey("10.0.0.4", 80) in table._dests[KEY], within=2)
            assert DestKey("10.0.0.5", 80) in table._dests[OTHER]
            assert rec.dumps > dumps
        finally:
            flapper.cancel()
        notices = [e.message for e in seen if isinstance(e, events.Notice)]
        assert any("IPVS table drifted" in m and "repaired with 2 operations" in m for m in notices), notices
        assert rec.full == 1  # every sync since start-up was incremental; repairs came from resync
    finally:
        await engine.stop(cleanstop=False)


async def test_after_a_failed_sync_the_next_one_dumps_and_diffs_everything() -> None:
    table, runner = MemoryTable(), ScriptedRunner()
    rec = Counting(table)
    engine = Engine(config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3")))), runner, rec,
                    resync_interval=None, coalesce=0.002, retry=0.05)
    await engine.start()
    try:
        await asyncio.wait_for(engine.first_round.wait(), 10)
        await engine.flush()
        real_update = rec.update
        failures = 1

        async def failing_update(desired, changed):  # type: ignore[no-untyped-def]
            nonlocal failures
            if failures:
                failures -= 1
                raise OSError("netlink said no")
            return await real_update(desired, changed)

        rec.update = failing_update  # type: ignore[method-assign]
        full = rec.full
        await table.apply(DeleteDest(KEY, DestKey("10.0.0.2", 80)))  # drift the next full sync sees
        runner.ok["10.0.0.3"] = False
        await until(lambda: rec.full > full)
        await engine.flush()
        assert engine.last_sync_error is None
        assert weights(await table.dump(), KEY) == {"10.0.0.2:80": 1}
    finally:
        await engine.stop(cleanstop=False)


async def test_a_reload_with_one_line_changed_touches_that_line_only() -> None:
    """Zero flaps, zero new schedules for identities that did not change, one table operation,
    no dump: the reload re-adopts from the reconciler's belief and syncs the changed virtual alone."""
    from healthd.config import parse_text

    text = ("checkinterval=0.05\nquiescent=no\n\n" + "".join(
        f"virtual=10.0.0.{v}:80\n" + "".join(f"\treal=10.1.{v}.{i}:80 masq 1\n" for i in range(1, 6))
        + '\tservice=http\n\treceive="ok"\n\n' for v in range(1, 4)))
    table, runner, seen = MemoryTable(), ScriptedRunner(), []
    rec = Counting(table)
    engine = Engine(parse_text(text, "a.cf"), runner, rec, resync_interval=None, coalesce=0.002,
                    on_event=seen.append)
    await engine.start()
    try:
        await asyncio.wait_for(engine.first_round.wait(), 10)
        await engine.flush()
        schedules = dict(engine.scheduler._schedules)
        records = {spec: engine.health.get(spec) for spec in schedules}
        dumps, full = rec.dumps, rec.full
        seen.clear()
        edited = "# edited\n" + text.replace("10.1.2.3:80 masq 1", "10.1.2.3:80 masq 7")
        await engine.reload(parse_text(edited, "a.cf"))
        await engine.flush()
        await asyncio.sleep(0.2)  # a few check rounds: nothing may flap
        assert [e for e in seen if isinstance(e, events.RealChanged)] == []
        ops = [op for e in seen if isinstance(e, events.TableApplied) for op in e.operations]
        assert [type(op).__name__ for op in ops] == ["EditDest"] and ops[0].dest.weight == 7
        assert rec.dumps == dumps and rec.full == full  # no dump, no full diff
        # every identity kept its schedule object (so its phase) and its health record
        assert all(engine.scheduler._schedules[spec] is sched for spec, sched in schedules.items())
        assert all(engine.health.get(spec) is record for spec, record in records.items())
        assert weights(await table.dump(), ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.2", 80)) == {
            "10.1.2.1:80": 1, "10.1.2.2:80": 1, "10.1.2.3:80": 7, "10.1.2.4:80": 1, "10.1.2.5:80": 1}
    finally:
        await engine.stop(cleanstop=False)


async def test_a_virtual_added_by_a_reload_adopts_what_the_kernel_has_now() -> None:
    """Someone made the service by hand before adding it to the file: its reals keep their kernel
    weights while their first checks run, as at start-up (a fresh dump, not the belief)."""
    from healthd.config import parse_text
    from healthd.ipvs.model import AddDest, AddService, Dest, Service
    from healthd.vocab import Forward

    base = ("checkinterval=0.05\nquiescent=no\n\n"
            "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 masq\n\tservice=http\n")
    added = base + "\nvirtual=10.0.0.9:80\n\treal=10.0.0.5:80 masq\n\tservice=http\n"
    table, runner = MemoryTable(), ScriptedRunner()
    runner.delay["10.0.0.5"] = 0.3  # its first verdict comes late
    rec = Counting(table)
    engine = Engine(parse_text(base, "a.cf"), runner, rec, resync_interval=None, coalesce=0.002)
    await engine.start()
    try:
        await asyncio.wait_for(engine.first_round.wait(), 10)
        await table.apply(AddService(Service(OTHER, "wrr")))
        await table.apply(AddDest(OTHER, Dest("10.0.0.5", 80, Forward.MASQ, 4)))
        await engine.reload(parse_text(added, "a.cf"))
        await engine.flush()
        assert weights(await table.dump(), OTHER) == {"10.0.0.5:80": 4}  # kept while its check runs
        await until(lambda: weights(engine.applied, OTHER) == {"10.0.0.5:80": 1})
    finally:
        await engine.stop(cleanstop=False)
