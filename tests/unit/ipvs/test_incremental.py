"""The incremental reconcile (`Reconciler.update`): told only which services changed, it diffs them
against its belief of the kernel's table, with no dump, and ends with the table (and the operations)
a full dump + diff (`Reconciler.sync`) gives; drift it cannot see is repaired by `resync`."""

from __future__ import annotations

import errno
import random
from collections.abc import Sequence

from healthd.ipvs.backend import IPVSError
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    Dest,
    DestKey,
    Entry,
    Family,
    Forward,
    Operation,
    Service,
    ServiceKey,
    ServiceProtocol,
    Table,
)
from healthd.ipvs.reconcile import Reconciler
from healthd.ipvs.refusals import RefusalBook
from tests.unit.ipvs.contract import OTHER, TCP, entry

KEYS = [ServiceKey(Family.INET, ServiceProtocol.TCP, f"10.0.0.{i}", 80) for i in range(1, 6)]
SCHEDULERS = ["wrr", "rr", "wlc", "sh"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting(MemoryTable):
    """An in-memory table that counts dumps and may refuse the operations of one address (ERANGE,
    as the kernel refuses a lower threshold above the upper one)."""

    def __init__(self) -> None:
        super().__init__()
        self.dumps = 0
        self.refuse_address = ""

    async def dump(self) -> Table:
        self.dumps += 1
        return await super().dump()

    async def apply(self, op: Operation) -> None:
        dest = getattr(op, "dest", None)
        if isinstance(dest, Dest) and dest.address == self.refuse_address:
            raise IPVSError("injected: out of range", errno.ERANGE)
        await super().apply(op)


def reconciler(table: MemoryTable, clock: Clock) -> Reconciler:
    async def no_sleep(_: float) -> None:
        pass

    rec = Reconciler(table, sleep=no_sleep)
    rec.refusals = RefusalBook(first=1.0, ceiling=8.0, clock=clock, wall=clock)
    return rec


def random_dest(rng: random.Random) -> Dest:
    weight = rng.choice([0, 0, 1, 2, 5])
    return Dest(f"10.1.0.{rng.randrange(1, 12)}", 80, rng.choice([Forward.GATE, Forward.MASQ]), weight,
                readd=rng.random() < 0.5 if weight == 0 else True)


def random_entry(rng: random.Random, key: ServiceKey) -> Entry:
    dests = [random_dest(rng) for _ in range(rng.randrange(0, 6))]
    return Entry(Service(key, rng.choice(SCHEDULERS)), {d.key: d for d in dests})


def mutate(rng: random.Random, desired: dict[ServiceKey, Entry]) -> set[ServiceKey]:
    """One event: a real flips, is added or removed, a service changes, appears or leaves. The keys
    it touched (what the engine would mark dirty)."""
    key = rng.choice(KEYS)
    old = desired.get(key)
    roll = rng.random()
    if old is None or roll < 0.05:
        desired[key] = random_entry(rng, key)
    elif roll < 0.12:
        del desired[key]
    elif roll < 0.2:
        desired[key] = Entry(Service(key, rng.choice(SCHEDULERS)), old.dests)
    else:
        dests = dict(old.dests)
        for _ in range(rng.randrange(1, 3)):
            d = random_dest(rng)
            if d.key in dests and rng.random() < 0.3:
                del dests[d.key]
            else:
                dests[d.key] = d
        desired[key] = Entry(old.service, dests)
    return {key}


async def test_update_ends_with_the_table_and_operations_of_a_full_diff() -> None:
    """Property-style: seeded random event sequences, each step converged incrementally on one table
    and with a full dump + diff on another; same operations, same table, every step."""
    for seed in range(40):
        rng = random.Random(seed)
        clock = Clock()
        tables = Counting(), Counting()
        # a table the kernel already had (adopted at start) and someone else's service
        for table in tables:
            await table.apply(AddService(Service(KEYS[0], "rr")))
            await table.apply(AddDest(KEYS[0], Dest("10.1.0.1", 80, weight=3)))
            await table.apply(AddService(Service(OTHER, "lc")))
            await table.apply(AddDest(OTHER, Dest("10.9.0.1", 443)))
        inc, full = reconciler(tables[0], clock), reconciler(tables[1], clock)
        desired = {k: random_entry(rng, k) for k in KEYS[:3]}
        managed = set(KEYS)
        await inc.sync(desired, managed)
        await full.sync(desired, managed)
        dumps, resyncs = inc.dumps, 0
        for step in range(60):
            if rng.random() < 0.1:  # one real's settings become unacceptable to the kernel, or acceptable
                address = rng.choice(["", "", "10.1.0.3", "10.1.0.7"])
                for table in tables:
                    table.refuse_address = address
            if rng.random() < 0.2:
                clock.now += rng.choice([0.5, 1.0, 3.0, 9.0])  # refused entries come due
            if rng.random() < 0.08:  # someone deletes a real by hand; the slow clock's resync repairs it
                have = await tables[0].dump()
                victims = [(k, d) for k in sorted(have) if k != OTHER for d in sorted(have[k].dests)]
                if victims:
                    key, dkey = rng.choice(victims)
                    for table in tables:
                        await table.apply(DeleteDest(key, dkey))
                    assert await inc.resync() == await full.resync()
                    resyncs += 1
            changed = mutate(rng, desired)
            ops_inc = await inc.update(desired, changed)
            ops_full = await full.sync(desired, managed)
            where = f"seed {seed} step {step}"
            assert ops_inc == ops_full, where
            assert await tables[0].dump() == await tables[1].dump(), where
            assert [r.key for r in inc.refusals.entries()] == [r.key for r in full.refusals.entries()], where
            assert inc.believed() == {k: v for k, v in (await tables[0].dump()).items()}, where
        assert inc.dumps == dumps + resyncs, f"seed {seed}: update dumped the table"
        assert (await tables[0].dump())[OTHER] == entry(Service(OTHER, "lc"), Dest("10.9.0.1", 443))


async def test_one_change_touches_only_its_service() -> None:
    table, clock = Counting(), Clock()
    rec = reconciler(table, clock)
    desired = {k: entry(Service(k, "wrr"), *(Dest(f"10.1.0.{i}", 80) for i in range(1, 20))) for k in KEYS}
    await rec.sync(desired, set(desired))
    dumps = table.dumps
    desired[KEYS[2]] = entry(Service(KEYS[2], "wrr"), *(Dest(f"10.1.0.{i}", 80, weight=1 + (i == 7))
                                                          for i in range(1, 20)))
    ops: Sequence[Operation] = await rec.update(desired, {KEYS[2]})
    assert [type(op).__name__ for op in ops] == ["EditDest"] and table.dumps == dumps
    assert await rec.update(desired, set()) == ()  # nothing changed: nothing sent, nothing read


async def test_drift_is_invisible_to_update_and_repaired_by_resync() -> None:
    """Someone deletes a real and edits another behind healthd's back: the next update (another
    service changed) does not see it, the resync on the slow clock repairs it; a quiesced real
    with readdquiescent=no that someone removed stays out, as with a full sync."""
    table, clock = Counting(), Clock()
    rec = reconciler(table, clock)
    live, edited, quiet = Dest("10.1.0.1", 80), Dest("10.1.0.2", 80, weight=4), \
        Dest("10.1.0.3", 80, weight=0, readd=False)
    desired = {TCP: entry(Service(TCP, "wrr"), live, edited, quiet),
               KEYS[1]: entry(Service(KEYS[1], "rr"), Dest("10.1.0.9", 80))}
    await rec.sync(desired, set(desired))
    await table.apply(DeleteDest(TCP, live.key))
    await table.apply(DeleteDest(TCP, quiet.key))
    await table.apply(AddDest(TCP, Dest("10.1.0.99", 80)))  # someone added a stranger to our service
    desired[KEYS[1]] = entry(Service(KEYS[1], "rr"), Dest("10.1.0.9", 80, weight=2))
    await rec.update(desired, {KEYS[1]})
    assert set((await table.dump())[TCP].dests) == {edited.key, DestKey("10.1.0.99", 80)}  # unseen
    ops = await rec.resync()
    assert sorted(type(op).__name__ for op in ops) == ["AddDest", "DeleteDest"]
    assert (await table.dump())[TCP] == entry(Service(TCP, "wrr"), live, edited)
    assert rec.believed() == {k: v for k, v in (await table.dump()).items()}


async def test_an_error_drops_the_belief_and_the_next_update_dumps() -> None:
    table, clock = Counting(), Clock()
    rec = reconciler(table, clock)
    desired = {TCP: entry(Service(TCP, "wrr"), Dest("10.1.0.1", 80))}
    await rec.sync(desired, {TCP})
    failing = Counting.apply

    async def unavailable(self: Counting, op: Operation) -> None:
        raise IPVSError("no IPVS", errno.EPERM)

    Counting.apply = unavailable  # type: ignore[method-assign]
    try:
        desired[TCP] = entry(Service(TCP, "wrr"), Dest("10.1.0.1", 80), Dest("10.1.0.2", 80))
        try:
            await rec.update(desired, {TCP})
        except IPVSError:
            pass
        else:
            raise AssertionError("EPERM must reach the engine")
    finally:
        Counting.apply = failing  # type: ignore[method-assign]
    assert rec.believed() is None
    dumps = table.dumps
    await table.apply(DeleteDest(TCP, DestKey("10.1.0.1", 80)))  # meanwhile, by hand
    await rec.update(desired, set())
    assert table.dumps == dumps + 1
    assert set((await table.dump())[TCP].dests) == {DestKey("10.1.0.1", 80), DestKey("10.1.0.2", 80)}


async def test_a_service_removed_by_update_is_not_ours_any_more() -> None:
    table, clock = Counting(), Clock()
    rec = reconciler(table, clock)
    desired = {TCP: entry(Service(TCP, "wrr"), Dest("10.1.0.1", 80)),
               KEYS[1]: entry(Service(KEYS[1], "rr"), Dest("10.1.0.2", 80))}
    await rec.sync(desired, set(desired))
    del desired[TCP]
    assert [type(op).__name__ for op in await rec.update(desired, {TCP})] == ["DeleteService"]
    await table.apply(AddService(Service(TCP, "lc")))  # someone else's now
    assert await rec.resync() == ()
    assert set(await table.dump()) == {TCP, KEYS[1]}
