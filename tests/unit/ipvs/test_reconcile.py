"""The applier: converges after partial failures and races, backs off, and gives up with a clear error."""

from __future__ import annotations

import errno

import pytest

from healthd.ipvs.backend import IPVSError
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.model import AddDest, AddService, Dest, Operation, Service
from healthd.ipvs.reconcile import Reconciler
from tests.unit.ipvs.contract import TCP, entry

DESIRED = {TCP: entry(Service(TCP, "wrr"), Dest("10.0.1.1", 80), Dest("10.0.1.2", 80))}


class Flaky(MemoryTable):
    """A memory table whose first `failures` operations matching `kind` fail like the kernel under stress."""

    def __init__(self, kind: type, failures: int, code: int = errno.ENOMEM) -> None:
        super().__init__()
        self.kind, self.failures, self.code = kind, failures, code
        self.dumps = 0

    async def dump(self):  # type: ignore[override]
        self.dumps += 1
        return await super().dump()

    async def apply(self, op: Operation) -> None:
        if isinstance(op, self.kind) and self.failures:
            self.failures -= 1
            raise IPVSError(f"{type(op).__name__}: injected failure", self.code)
        await super().apply(op)


class Racing(MemoryTable):
    """Another writer adds one of our real servers, with other settings, right after our service appears."""

    async def apply(self, op: Operation) -> None:
        await super().apply(op)
        if isinstance(op, AddService):
            await super().apply(AddDest(op.service.key, Dest("10.0.1.2", 80, weight=7)))


async def no_sleep(delays: list[float], s: float) -> None:
    delays.append(s)


async def test_converges_after_a_partial_failure_with_backoff() -> None:
    table = Flaky(AddDest, failures=3)
    delays: list[float] = []
    rec = Reconciler(table, backoff=0.1, sleep=lambda s: no_sleep(delays, s))
    await rec.sync(DESIRED, {TCP})
    assert delays == [0.1, 0.2] and table.dumps == 3  # re-dumped before every retry
    assert await table.dump() == DESIRED


async def test_gives_up_with_the_last_error() -> None:
    table = Flaky(AddService, failures=100)
    rec = Reconciler(table, attempts=3, sleep=lambda s: no_sleep([], s))
    with pytest.raises(IPVSError, match=r"did not converge after 3 attempts.*AddService: injected") as e:
        await rec.sync(DESIRED, {TCP})
    assert e.value.errno == errno.ENOMEM


async def test_eexist_race_ends_in_the_desired_settings() -> None:
    table = Racing()
    rec = Reconciler(table, sleep=lambda s: no_sleep([], s))
    await rec.sync(DESIRED, {TCP})
    assert (await table.dump())[TCP].dests == DESIRED[TCP].dests


async def test_deleting_what_is_already_gone_is_fine() -> None:
    table = MemoryTable()
    rec = Reconciler(table)
    await rec.sync(DESIRED, {TCP})
    await table.flush()  # someone cleared the table by hand; then healthd drops the virtual
    await rec.sync({}, {TCP})
    assert await table.dump() == {}


async def test_resync_before_any_sync_does_nothing() -> None:
    table = MemoryTable()
    await table.apply(AddService(Service(TCP)))
    await Reconciler(table).resync()
    assert list(await table.dump()) == [TCP]
