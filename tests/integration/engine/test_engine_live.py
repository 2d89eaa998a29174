"""The engine with everything real but the kernel: ldirectord.cf text, the CheckRunner against
HTTP servers on loopback (healthy, failing, refusing, hanging, dripping), the Reconciler and the
in-memory IPVS table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from healthd.checks.runner import CheckRunner
from healthd.config import parse_text
from healthd.engine import events
from healthd.engine.engine import Engine
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.model import DeleteDest, DestKey, Family, ServiceKey, ServiceProtocol
from healthd.ipvs.reconcile import Reconciler

from .servers import Real, free_port

VIP = ServiceKey(Family.INET, ServiceProtocol.TCP, "192.0.2.10", 80)
INTERVAL = 0.2
TIMEOUT = 1.0


async def until(cond: Callable[[], bool], within: float = 5.0) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not cond():
        assert loop.time() - t0 < within, "condition not reached in time"
        await asyncio.sleep(0.005)
    return loop.time() - t0


@pytest.fixture
async def reals() -> AsyncIterator[dict[str, Real]]:
    out = {}
    for name, host in (("a", "127.0.0.2"), ("b", "127.0.0.3"), ("hang", "127.0.0.4"), ("refuse", "127.0.0.5"),
                       ("drip", "127.0.0.6")):
        out[name] = Real(host, free_port(host))
        await out[name].start()
    await out["hang"].set("hang")
    await out["refuse"].set("refuse")
    await out["drip"].set("drip")
    yield out
    for r in out.values():
        await r.close()


def config_text(reals: dict[str, Real], names: list[str], extra: str = "") -> str:
    lines = "".join(f"\treal={reals[n].host}:{reals[n].port} masq\n" for n in names)
    return (
        f"checkinterval={INTERVAL}\nchecktimeout={TIMEOUT}\nquiescent=no\n{extra}"
        f"\nvirtual={VIP.address}:{VIP.port}\n{lines}"
        '\tservice=http\n\trequest="/health"\n\treceive="ok"\n\tfallback=127.0.0.1:8080 masq\n'
    )


class Live:
    def __init__(self, text: str, **engine_kw: object) -> None:
        self.table = MemoryTable()
        self.runner = CheckRunner()
        self.events: list[events.Event] = []
        self.engine = Engine(parse_text(text, "live.cf"), self.runner, Reconciler(self.table),
                             on_event=self.events.append, **engine_kw)  # type: ignore[arg-type]

    async def dests(self) -> dict[str, int]:
        table = await self.table.dump()
        entry = table.get(VIP)
        return {} if entry is None else {str(k): d.weight for k, d in entry.dests.items()}

    async def __aenter__(self) -> Live:
        await self.engine.start()  # starts the runner too
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.stop(cleanstop=False)  # closes the runner too


async def wait_dests(live: Live, want: dict[str, int], within: float = 5.0) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while (got := await live.dests()) != want:
        assert loop.time() - t0 < within, f"table is {got}, expected {want}"
        await asyncio.sleep(0.005)
    return loop.time() - t0


def label(r: Real) -> str:
    return f"{r.host}:{r.port}"


async def test_table_follows_real_servers_and_hostile_ones_hurt_nobody(reals: dict[str, Real]) -> None:
    a, b = reals["a"], reals["b"]
    text = config_text(reals, ["a", "b", "hang", "refuse", "drip"])
    async with Live(text) as live:
        await asyncio.wait_for(live.engine.first_round.wait(), TIMEOUT + 2)
        # only the healthy ones carry traffic; hanging, refusing and dripping reals never joined
        assert await live.dests() == {label(a): 1, label(b): 1}
        reals_now = [r for v in live.engine.config.virtuals for r in v.reals]
        healthy = [r.check for r in reals_now if r.address in (a.host, b.host)]
        before = [live.engine.health.get(c).checks for c in healthy]  # type: ignore[union-attr]
        live.engine.scheduler.lateness.reset()
        await asyncio.sleep(10 * INTERVAL)  # the hostile reals keep failing meanwhile
        after = [live.engine.health.get(c).checks for c in healthy]  # type: ignore[union-attr]
        # plain HTTP: every identity ran on the task-free path (healthd.checks.httpfast)
        schedules = list(live.engine.scheduler._schedules.values())
        assert len(schedules) == 5 and all(s.fast is not None for s in schedules)
        # nobody waits behind them: ~10 checks each, where a serial checker stuck on the
        # hanging real (1 s timeout) would manage 2
        assert all(y - x >= 5 for x, y in zip(before, after, strict=True)), (before, after)
        assert live.engine.scheduler.stats().lateness_median < 0.05

        await a.set("refuse")
        took = await wait_dests(live, {label(b): 1})
        assert took < INTERVAL + 0.5  # refusing: caught by the next check
        await b.set("error")
        await wait_dests(live, {"127.0.0.1:8080": 1})  # nobody left: the fallback serves
        await a.set("hang")
        await asyncio.sleep(INTERVAL)
        await a.set("ok")  # the hung check times out, the next one passes
        await wait_dests(live, {label(a): 1}, within=TIMEOUT + 2)

    changes = [(e.real.address, str(e.new)) for e in live.events if isinstance(e, events.RealChanged)]
    assert (a.host, "down") in changes and (a.host, "up") in changes
    assert [e.active for e in live.events if isinstance(e, events.FallbackChanged)] == [True, False]


async def test_hanging_real_detected_within_interval_plus_timeout(reals: dict[str, Real]) -> None:
    a, b = reals["a"], reals["b"]
    async with Live(config_text(reals, ["a", "b"])) as live:
        await wait_dests(live, {label(a): 1, label(b): 1})
        await a.set("hang")
        took = await wait_dests(live, {label(b): 1}, within=INTERVAL + TIMEOUT + 2)
        assert took < INTERVAL + TIMEOUT + 0.5


async def test_reload_keeps_state_and_cleanstop_empties_the_table(reals: dict[str, Real]) -> None:
    a, b = reals["a"], reals["b"]
    live = Live(config_text(reals, ["a"]))
    async with live:
        await wait_dests(live, {label(a): 1})
        # reload adds b; a never leaves the table on the way, b joins after its first check
        seen: list[dict[str, int]] = []
        await live.engine.reload(parse_text(config_text(reals, ["a", "b"]), "live.cf"))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while (now := await live.dests()) != {label(a): 1, label(b): 1}:
            seen.append(now)
            assert loop.time() - t0 < 3
            await asyncio.sleep(0.005)
        assert all(label(a) in s for s in seen)
        await live.engine.stop(cleanstop=True)
        assert await live.table.dump() == {}


async def test_maintenance_dir_on_live_servers(reals: dict[str, Real], tmp_path: Path) -> None:
    a, b = reals["a"], reals["b"]
    text = config_text(reals, ["a", "b"], extra=f"maintenancedir={tmp_path}\n")
    async with Live(text, maintenance_period=0.05) as live:
        await wait_dests(live, {label(a): 1, label(b): 1})
        (tmp_path / f"{a.host}:{a.port}").touch()
        await wait_dests(live, {label(b): 1})
        (tmp_path / f"{a.host}:{a.port}").unlink()
        await wait_dests(live, {label(a): 1, label(b): 1})


async def test_hand_made_change_is_repaired(reals: dict[str, Real]) -> None:
    a, b = reals["a"], reals["b"]
    async with Live(config_text(reals, ["a", "b"]), resync_interval=0.2) as live:
        await wait_dests(live, {label(a): 1, label(b): 1})
        await live.table.apply(DeleteDest(VIP, DestKey(a.host, a.port)))  # someone ran ipvsadm -d
        assert await live.dests() == {label(b): 1}
        await wait_dests(live, {label(a): 1, label(b): 1}, within=3)
