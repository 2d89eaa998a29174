"""Builders and fakes for engine tests: one-line configs, a scripted check runner, a recording table."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from healthd.checks.spec import CheckSpec, CheckType, Outcome
from healthd.config.model import Config, Fallback, GlobalSettings, Real, Virtual
from healthd.ipvs.model import Entry, ServiceKey, Table
from healthd.vocab import Forward, ServiceProtocol


def spec(address: str = "10.0.0.2", port: int = 80, **kw: Any) -> CheckSpec:
    base = CheckSpec(
        type=CheckType.NEGOTIATE, service="http", protocol=ServiceProtocol.TCP,
        family=4, address=address, port=port,
        checkinterval=1.0, checktimeout=1.0, negotiatetimeout=1.0,
    )
    return replace(base, **kw)


def real(address: str = "10.0.0.2", port: int = 80, forward: str = "masq", weight: int = 1,
         check: CheckSpec | None = None, **kw: Any) -> Real:
    return Real(address, port, Forward(forward), weight, check or spec(address, port), **kw)


def virtual(address: str = "10.0.0.1", port: int = 80, reals: tuple[Real, ...] = (), **kw: Any) -> Virtual:
    protocol = ServiceProtocol(kw.pop("protocol", "tcp"))
    family = kw.pop("family", 6 if ":" in address else 4)
    return Virtual(family=family, protocol=protocol, address=address, port=port, fwmark=None,
                   reals=reals, **kw)


def fwm_virtual(mark: int, reals: tuple[Real, ...] = (), **kw: Any) -> Virtual:
    return Virtual(family=kw.pop("family", 4), protocol=ServiceProtocol.FWM,
                   address=None, port=0, fwmark=mark,
                   reals=reals, **kw)


def config(*virtuals: Virtual, **settings: Any) -> Config:
    return Config(path="test.cf", settings=GlobalSettings(**settings), virtuals=tuple(virtuals))


FALLBACK = Fallback("127.0.0.1", 80, Forward.MASQ, 1)


class ScriptedRunner:
    """CheckRunner stand-in: verdict per address (settable any time), optional delay per address."""

    def __init__(self, default: bool = True) -> None:
        self.default = default
        self.ok: dict[str, bool] = {}
        self.delay: dict[str, float] = {}
        self.runs: list[tuple[float, CheckSpec]] = []

    async def start(self, services: object = None) -> None:
        pass

    async def close(self) -> None:
        pass

    async def run(self, spec: CheckSpec) -> Outcome:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.runs.append((start, spec))
        delay = self.delay.get(spec.address, 0.0)
        if delay:
            try:
                async with asyncio.timeout(spec.deadline):
                    await asyncio.sleep(delay)
            except TimeoutError:
                return Outcome(False, "timed out", loop.time() - start)
        ok = self.ok.get(spec.address, self.default)
        return Outcome(ok, "ok" if ok else "refused", loop.time() - start)


class FakeBackend:
    def __init__(self, table: Table | None = None) -> None:
        self.table: dict[ServiceKey, Entry] = dict(table or {})
        # the kernel's ActiveConn per destination, kept apart from the table as the kernel keeps it
        self.active: dict[tuple[ServiceKey, str], int] = {}

    async def dump(self) -> Table:
        if not self.active:
            return dict(self.table)
        active = self.active
        return {key: replace(entry, dests={
            dkey: replace(d, active_conns=active.get((key, str(dkey)), 0)) for dkey, d in entry.dests.items()
        }) for key, entry in self.table.items()}


class RecordingReconciler:
    """Keeps the last desired table (restricted to managed services) and every call."""

    def __init__(self, table: Table | None = None, fail: Callable[[], bool] | None = None) -> None:
        self.backend = FakeBackend(table)
        self.calls: list[tuple[float, Table, frozenset[ServiceKey]]] = []
        self.fail = fail

    async def dump(self) -> Table:
        return await self.backend.dump()

    async def resync(self) -> None:
        pass

    def believed(self, keys: Any) -> None:
        return None  # no belief: the engine adopts from a dump

    async def update(self, desired: Table, changed: Any) -> None:
        """Converge `changed` only: recorded as a sync of a copy of the whole desired table (the
        engine's own table moves on) over the changed services."""
        await self.sync(dict(desired), changed)

    async def sync(self, desired: Table, managed: Any) -> None:
        self.calls.append((asyncio.get_running_loop().time(), desired, frozenset(managed)))
        if self.fail is not None and self.fail():
            raise OSError("netlink said no")
        table = self.backend.table
        for key in managed:
            if key in desired:
                table[key] = desired[key]
            else:
                table.pop(key, None)

    @property
    def table(self) -> Mapping[ServiceKey, Entry]:
        return self.backend.table

    def weights(self, key: ServiceKey) -> dict[str, int]:
        entry = self.backend.table.get(key)
        return {} if entry is None else {f"{k.address}:{k.port}": d.weight for k, d in entry.dests.items()}
