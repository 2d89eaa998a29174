"""A real server the kernel refuses costs only that entry: the engine starts, applies the rest, reports
the refusal (snapshot, STATUS line, `healthd status`) and tries it again with back-off."""

from __future__ import annotations

import asyncio
import dataclasses

from healthd.cli import format_status
from healthd.daemon.lifecycle import summary
from healthd.engine.engine import Engine
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.model import DestKey, Family, Protocol, ServiceKey
from healthd.ipvs.reconcile import Reconciler
from healthd.ipvs.refusals import RefusalBook

from .fakes import ScriptedRunner, config, real, spec, virtual

KEY = ServiceKey(Family.INET, Protocol.TCP, "10.0.0.1", 80)
OTHER = ServiceKey(Family.INET, Protocol.TCP, "10.0.0.9", 80)
IV = 0.05


def r(addr: str, **kw) -> object:  # type: ignore[no-untyped-def]
    return real(addr, check=spec(addr, checkinterval=IV), **kw)


async def until(cond, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_a_lower_threshold_alone_costs_only_its_real_and_is_retried() -> None:
    table = MemoryTable()
    reconciler = Reconciler(table)
    reconciler.refusals = RefusalBook(first=0.1, ceiling=0.4)
    refused: list[object] = []
    reconciler.on_refusal = lambda refusal, new: refused.append((refusal, new))
    cfg = config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3", lower=5))),
                 virtual("10.0.0.9", reals=(r("10.0.0.4"),)))
    engine = Engine(cfg, ScriptedRunner(), reconciler, resync_interval=None)
    await engine.start()  # no exception: the daemon starts
    await asyncio.wait_for(engine.first_round.wait(), 10)
    have = await table.dump()
    assert set(have[KEY].dests) == {DestKey("10.0.0.2", 80)}
    assert set(have[OTHER].dests) == {DestKey("10.0.0.4", 80)}
    assert len(refused) == 1  # published once, not at every retry

    snap = engine.snapshot()
    [sentence] = snap.refused
    assert sentence == ("add real 10.0.0.3:80 to TCP 10.0.0.1:80 (masq, weight 1): refused by the kernel: "
                        "weight or thresholds out of range (ERANGE)")
    reals = {x.real: x for x in snap.virtuals[0].reals}
    assert reals["10.0.0.3:80"].weight is None and "ERANGE" in reals["10.0.0.3:80"].refused
    assert reals["10.0.0.2:80"].weight == 1 and reals["10.0.0.2:80"].refused == ""
    plain = dataclasses.asdict(snap)
    assert summary(plain) == f"3/3 reals up in 2 virtual services; IPVS {sentence}"
    text = format_status({**plain, "summary": summary(plain), "ipvs": "memory"})
    assert f"IPVS {sentence} (the rest of the table is applied; tried again with back-off)" in text
    assert "10.0.0.3:80" in text and "refused" in text

    # tried again by itself once the back-off ends (0.1 s, then 0.2 s, ...), with no check changing
    await until(lambda: reconciler.refusals.entries()[0].attempts >= 3, within=5)

    # a reload that fixes the line applies it at once
    fixed = config(virtual(reals=(r("10.0.0.2"), r("10.0.0.3", lower=5, upper=10))),
                   virtual("10.0.0.9", reals=(r("10.0.0.4"),)))
    await engine.reload(fixed)
    await engine.flush()
    assert DestKey("10.0.0.3", 80) in (await table.dump())[KEY].dests
    assert engine.snapshot().refused == ()
    await engine.stop(cleanstop=False)
