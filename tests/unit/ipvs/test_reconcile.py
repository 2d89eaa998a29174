"""The applier: converges after partial failures and races, backs off, and gives up with a clear error."""

from __future__ import annotations

import errno

import pytest

from healthd.ipvs.backend import IPVSError
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.model import (
    AddDest,
    AddService,
    Dest,
    DestKey,
    Family,
    Operation,
    Service,
    ServiceKey,
)
from healthd.ipvs.reconcile import Reconciler, describe_op
from healthd.ipvs.refusals import RefusalBook
from healthd.vocab import ServiceProtocol
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


async def test_a_lasting_failure_costs_only_its_entry_and_is_held_back() -> None:
    table = Flaky(AddService, failures=100)
    rec = Reconciler(table, attempts=3, sleep=lambda s: no_sleep([], s))
    await rec.sync(DESIRED, {TCP})  # no exception: the daemon goes on
    assert await table.dump() == {}
    [refusal] = rec.refusals.entries()  # the service; its real servers wait with it
    assert refusal.key == (TCP, None) and refusal.errno == errno.ENOMEM and refusal.attempts == 1
    assert refusal.reason == "Cannot allocate memory (ENOMEM)"
    assert rec.next_retry() is not None


async def test_no_permission_is_not_an_entry_problem() -> None:
    table = Flaky(AddService, failures=100, code=errno.EPERM)
    rec = Reconciler(table, attempts=3, sleep=lambda s: no_sleep([], s))
    with pytest.raises(IPVSError, match="injected") as e:
        await rec.sync(DESIRED, {TCP})
    assert e.value.errno == errno.EPERM


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_refused_real_server_costs_only_that_entry_and_is_retried_with_backoff() -> None:
    """The kernel refuses l:5 without an upper threshold (ERANGE); the rest is applied."""
    good, bad = Dest("10.0.1.1", 80), Dest("10.0.1.2", 80, lower=5)
    other = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.9", 80)
    desired = {TCP: entry(Service(TCP, "wrr"), good, bad),
               other: entry(Service(other, "rr"), Dest("10.0.1.3", 80))}
    table, clock, told = MemoryTable(), Clock(), []
    rec = Reconciler(table, sleep=lambda s: no_sleep([], s))
    rec.refusals = RefusalBook(first=1.0, clock=clock, wall=clock)
    rec.on_refused = lambda op, error: told.append((describe_op(op), error.errno))
    await rec.sync(desired, set(desired))
    have = await table.dump()
    assert set(have[TCP].dests) == {good.key} and set(have[other].dests) == {DestKey("10.0.1.3", 80)}
    [refusal] = rec.refusals.entries()
    assert refusal.sentence() == ("add real 10.0.1.2:80 to TCP 10.0.0.1:80 (gate, weight 1): refused by the "
                                  "kernel: weight or thresholds out of range (ERANGE)")
    assert told == [(refusal.what, errno.ERANGE)] and rec.next_retry() == 1.0
    # held back until the back-off expires: a sync now sends nothing for it
    await rec.sync(desired, set(desired))
    assert rec.last_ops == [] and rec.refusals.entries()[0].attempts == 1
    clock.now += 1.0
    await rec.sync(desired, set(desired))
    assert rec.refusals.entries()[0].attempts == 2 and rec.next_retry() == 2.0  # doubled
    assert len(told) == 1  # the same reason again is not news
    # a reload that fixes the thresholds is applied at once, back-off or not
    fixed = {**desired, TCP: entry(Service(TCP, "wrr"), good, Dest("10.0.1.2", 80, upper=10, lower=5))}
    await rec.sync(fixed, set(fixed))
    assert DestKey("10.0.1.2", 80) in (await table.dump())[TCP].dests
    assert rec.refusals.entries() == [] and len(told) == 1
    # an entry that left the desired table is forgotten
    await rec.sync(desired, set(desired))
    assert len(rec.refusals) == 1
    await rec.sync({other: desired[other]}, set(desired))
    assert len(rec.refusals) == 0


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


def test_the_kernel_reason_is_the_backends_reading_of_the_errno() -> None:
    from healthd.ipvs.model import AddService
    from healthd.ipvs.refusals import kernel_reason

    op = AddService(Service(TCP, "fastest"))
    assert kernel_reason(IPVSError(f"{describe_op(op)}: the kernel has no scheduler 'fastest'", errno.ENOENT),
                         op) == "the kernel has no scheduler 'fastest' (ENOENT)"
    assert kernel_reason(IPVSError("netlink: out of range", errno.ERANGE)) == \
        "Numerical result out of range (ERANGE)"
