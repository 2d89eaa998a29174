"""The incremental reconcile on the kernel's table: `Reconciler.update` (no dump, only the changed
services) ends where a full dump + diff would, `ipvsadm` shows it; drift made with `ipvsadm` by hand is
not seen by `update` and is repaired by `resync`, and by the engine on its resync clock."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from healthd.config import parse_text
from healthd.engine import events
from healthd.engine.engine import Engine
from healthd.ipvs.model import Dest, Entry, Family, Forward, Service, ServiceKey, ServiceProtocol
from healthd.ipvs.reconcile import Reconciler
from tests.kernel.conftest import ipvsadm
from tests.unit.engine.fakes import ScriptedRunner

KEYS = [ServiceKey(Family.INET, ServiceProtocol.TCP, f"10.0.0.{i}", 80) for i in range(1, 5)]


def random_entry(rng: random.Random, key: ServiceKey) -> Entry:
    dests = [Dest(f"10.1.0.{rng.randrange(1, 20)}", 80 if rng.random() < 0.5 else 8080, Forward.MASQ,
                  rng.choice([0, 1, 3])) for _ in range(rng.randrange(0, 8))]
    return Entry(Service(key, rng.choice(["wrr", "rr", "wlc"])), {d.key: d for d in dests})


async def test_update_matches_a_full_diff_on_the_kernel_table(table: Any) -> None:
    rng = random.Random(15)
    rec = Reconciler(table)
    desired = {k: random_entry(rng, k) for k in KEYS[:2]}
    await rec.sync(desired, set(KEYS))
    dumps = rec.dumps
    for _step in range(80):
        key = rng.choice(KEYS)
        if key in desired and rng.random() < 0.1:
            del desired[key]
        else:
            desired[key] = random_entry(rng, key)
        await rec.update(desired, {key})
        assert rec.believed() == {k: v for k, v in (await table.dump()).items()}
    assert rec.dumps == dumps  # every step without a dump (the checks above dump the table themselves)
    # a full dump + diff finds nothing left to do, and the kernel holds exactly `desired`
    assert await rec.sync(desired, set(KEYS)) == ()
    assert await table.dump() == desired
    listing = ipvsadm("-Ln")
    for key, entry in desired.items():
        assert f"TCP  {key.address}:80 {entry.service.scheduler}" in listing


async def test_drift_by_hand_is_repaired_by_resync_not_by_update(table: Any) -> None:
    rec = Reconciler(table)
    a, b = KEYS[0], KEYS[1]
    desired = {a: Entry(Service(a, "wrr"), {d.key: d for d in (Dest("10.1.0.1", 80, Forward.MASQ, 2),
                                                               Dest("10.1.0.2", 80, Forward.MASQ, 1))}),
               b: Entry(Service(b, "rr"), {d.key: d for d in (Dest("10.1.0.3", 80, Forward.MASQ, 1),)})}
    await rec.sync(desired, set(desired))
    before = ipvsadm("-Ln")
    ipvsadm("-d", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80")  # someone, behind healthd's back
    ipvsadm("-e", "-t", "10.0.0.1:80", "-r", "10.1.0.2:80", "-m", "-w", "9")
    desired[b] = Entry(Service(b, "rr"), {d.key: d for d in (Dest("10.1.0.3", 80, Forward.MASQ, 4),)})
    await rec.update(desired, {b})
    assert "10.1.0.1:80" not in ipvsadm("-Ln")  # update only looks at what changed
    ops = await rec.resync()
    assert sorted(type(op).__name__ for op in ops) == ["AddDest", "EditDest"]
    assert ipvsadm("-Ln") == before.replace("  -> 10.1.0.3:80                  Masq    1",
                                            "  -> 10.1.0.3:80                  Masq    4")


async def test_the_engine_repairs_a_deleted_real_on_its_resync_clock(table: Any) -> None:
    text = ("checkinterval=0.05\nquiescent=no\n\nvirtual=10.0.0.1:80\n\treal=10.1.0.1:80 masq 1\n"
            "\treal=10.1.0.2:80 masq 1\n\tservice=http\n\treceive=\"ok\"\n")
    runner, seen = ScriptedRunner(), []
    engine = Engine(parse_text(text, "k.cf"), runner, Reconciler(table), resync_interval=0.5,
                    coalesce=0.002, on_event=seen.append)
    await engine.start()
    try:
        await asyncio.wait_for(engine.first_round.wait(), 10)
        await engine.flush()
        assert "10.1.0.1:80" in ipvsadm("-Ln")
        ipvsadm("-d", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while "10.1.0.1:80" not in ipvsadm("-Ln"):
            assert loop.time() < deadline, "the deleted real was not put back"
            await asyncio.sleep(0.05)
        notices = [e.message for e in seen if isinstance(e, events.Notice)]
        assert any("IPVS table drifted" in m for m in notices), notices
    finally:
        await engine.stop(cleanstop=True)
    assert ipvsadm("-Ln").count("->") == 1  # only the header line: cleanstop removed our service


async def test_a_reload_with_one_weight_changed_sends_one_operation(table: Any) -> None:
    text = ("checkinterval=0.05\nquiescent=no\n\n" + "".join(
        f"virtual=10.0.0.{v}:80\n" + "".join(f"\treal=10.1.{v}.{i}:80 masq 1\n" for i in range(1, 4))
        + '\tservice=http\n\treceive="ok"\n\n' for v in range(1, 4)))
    runner, seen = ScriptedRunner(), []
    rec = Reconciler(table)
    engine = Engine(parse_text(text, "k.cf"), runner, rec, resync_interval=None, coalesce=0.002,
                    on_event=seen.append)
    await engine.start()
    try:
        await asyncio.wait_for(engine.first_round.wait(), 10)
        await engine.flush()
        before, dumps = ipvsadm("-Ln"), rec.dumps
        seen.clear()
        edited = "# edited\n" + text.replace("10.1.2.2:80 masq 1", "10.1.2.2:80 masq 6")
        await engine.reload(parse_text(edited, "k.cf"))
        await engine.flush()
        await asyncio.sleep(0.3)  # a few rounds of checks: nothing flaps
        ops = [op for e in seen if isinstance(e, events.TableApplied) for op in e.operations]
        assert [type(op).__name__ for op in ops] == ["EditDest"]
        assert [e for e in seen if isinstance(e, events.RealChanged)] == []
        assert rec.dumps == dumps  # adopted from the belief, synced with update: no dump
        assert ipvsadm("-Ln") == before.replace("  -> 10.1.2.2:80                  Masq    1",
                                                "  -> 10.1.2.2:80                  Masq    6")
    finally:
        await engine.stop(cleanstop=True)
