"""The contract every IPVS table keeps: run against the in-memory table here and the kernel in the VM.

Subclass ContractSuite and give it a `table` fixture: a fresh, empty Backend with flush().
"""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest

from healthd.ipvs.backend import AlreadyExists, IPVSError, NotFound
from healthd.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    EditDest,
    EditService,
    Entry,
    Family,
    Forward,
    Service,
    ServiceKey,
    ServiceProtocol,
)
from healthd.ipvs.reconcile import Reconciler

TCP = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.1", 80)
UDP6 = ServiceKey(Family.INET6, ServiceProtocol.UDP, "2001:db8::1", 53)
FWM = ServiceKey(Family.INET, ServiceProtocol.FWM, fwmark=99)
FWM6 = ServiceKey(Family.INET6, ServiceProtocol.FWM, fwmark=7)
SCTP = ServiceKey(Family.INET, ServiceProtocol.SCTP, "10.0.0.3", 3868)
OTHER = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.200", 443)

SERVICES = [
    Service(TCP, "wrr"),
    Service(TCP, "lc", persistent=300, netmask=24),
    Service(UDP6, "sh", persistent=600, netmask=64, one_packet=True, sched_flags=frozenset({1, 2})),
    Service(FWM, "rr", persistent=360),
    Service(FWM6, "wlc", persistent=60, netmask=96),
    Service(SCTP, "mh", sched_flags=frozenset({1})),
    Service(TCP, "sed"),
    Service(TCP, "dh"),
]

DESTS = [
    (TCP, Dest("10.0.1.1", 80, Forward.MASQ, 3, upper=100, lower=10)),
    (TCP, Dest("10.0.1.2", 8080, Forward.GATE, 0)),
    (TCP, Dest("10.0.1.3", 80, Forward.IPIP, 65535)),
    (UDP6, Dest("2001:db8::2", 53, Forward.GATE, 5)),
    (FWM, Dest("172.17.111.234", 0, Forward.GATE, 1)),
    (FWM6, Dest("2001:db8::9", 0, Forward.IPIP, 2)),
]


def entry(service: Service, *dests: Dest) -> Entry:
    return Entry(service, {d.key: d for d in dests})


class ContractSuite:
    """Tests every Backend must pass."""

    @pytest.mark.parametrize("service", SERVICES, ids=lambda s: f"{s.key}-{s.scheduler}")
    async def test_service_round_trips(self, table: Any, service: Service) -> None:
        await table.apply(AddService(service))
        dumped = await table.dump()
        assert list(dumped) == [service.key]
        assert dumped[service.key].service == service.normalized()
        assert dumped[service.key].dests == {}

    async def test_full_netmask_reads_back_as_none(self, table: Any) -> None:
        await table.apply(AddService(Service(UDP6, "rr", persistent=10, netmask=128)))
        await table.apply(AddService(Service(TCP, "rr", persistent=10, netmask=32)))
        dumped = await table.dump()
        assert dumped[UDP6].service.netmask is None and dumped[TCP].service.netmask is None

    @pytest.mark.parametrize(("key", "dest"), DESTS, ids=lambda v: str(v))
    async def test_dest_round_trips(self, table: Any, key: ServiceKey, dest: Dest) -> None:
        await table.apply(AddService(Service(key, "wrr")))
        await table.apply(AddDest(key, dest))
        assert (await table.dump())[key].dests == {dest.key: dest}

    async def test_duplicates_are_already_exists(self, table: Any) -> None:
        await table.apply(AddService(Service(TCP)))
        with pytest.raises(AlreadyExists) as e:
            await table.apply(AddService(Service(TCP, "rr")))
        assert e.value.errno == errno.EEXIST and "TCP 10.0.0.1:80" in str(e.value)
        await table.apply(AddDest(TCP, Dest("10.0.1.1", 80)))
        with pytest.raises(AlreadyExists):
            await table.apply(AddDest(TCP, Dest("10.0.1.1", 80, weight=5)))

    @pytest.mark.parametrize("op", [
        EditService(Service(TCP, "rr")),
        DeleteService(TCP),
        AddDest(TCP, Dest("10.0.1.1", 80)),
        EditDest(TCP, Dest("10.0.1.1", 80)),
        DeleteDest(TCP, DestKey("10.0.1.1", 80)),
    ], ids=lambda op: type(op).__name__)
    async def test_missing_service_is_not_found(self, table: Any, op: Any) -> None:
        with pytest.raises(NotFound) as e:
            await table.apply(op)
        assert e.value.errno == errno.ESRCH and "TCP 10.0.0.1:80" in str(e.value)

    @pytest.mark.parametrize("op", [
        EditDest(TCP, Dest("10.0.1.9", 80)),
        DeleteDest(TCP, DestKey("10.0.1.9", 80)),
    ], ids=lambda op: type(op).__name__)
    async def test_missing_dest_is_not_found(self, table: Any, op: Any) -> None:
        await table.apply(AddService(Service(TCP)))
        with pytest.raises(NotFound) as e:
            await table.apply(op)
        assert e.value.errno == errno.ENOENT and "10.0.1.9:80" in str(e.value)

    async def test_unknown_scheduler_is_a_plain_error_naming_it(self, table: Any) -> None:
        with pytest.raises(IPVSError) as e:
            await table.apply(AddService(Service(TCP, "nosuch")))
        assert not isinstance(e.value, NotFound | AlreadyExists)
        assert "nosuch" in str(e.value) and "add service TCP 10.0.0.1:80" in str(e.value)
        assert await table.dump() == {}

    async def test_lower_threshold_above_upper_is_refused(self, table: Any) -> None:
        await table.apply(AddService(Service(TCP)))
        with pytest.raises(IPVSError) as e:
            await table.apply(AddDest(TCP, Dest("10.0.1.1", 80, upper=5, lower=10)))
        assert e.value.errno == errno.ERANGE and "10.0.1.1:80" in str(e.value)

    async def test_edit_service_in_place_keeps_its_dests(self, table: Any) -> None:
        dest = Dest("10.0.1.1", 80, Forward.MASQ, 2)
        await table.apply(AddService(Service(TCP, "wrr")))
        await table.apply(AddDest(TCP, dest))
        edited = Service(TCP, "sh", persistent=900, netmask=16, sched_flags=frozenset({2}))
        await table.apply(EditService(edited))
        assert (await table.dump())[TCP] == entry(edited, dest)
        plain = Service(TCP, "rr")  # and back: persistence and flags cleared, not kept
        await table.apply(EditService(plain))
        assert (await table.dump())[TCP] == entry(plain, dest)

    async def test_edit_dest_replaces_every_field(self, table: Any) -> None:
        await table.apply(AddService(Service(TCP)))
        await table.apply(AddDest(TCP, Dest("10.0.1.1", 80, Forward.MASQ, 2, upper=50, lower=5)))
        new = Dest("10.0.1.1", 80, Forward.IPIP, 0)
        await table.apply(EditDest(TCP, new))
        assert (await table.dump())[TCP].dests == {new.key: new}

    async def test_delete_dest_and_service(self, table: Any) -> None:
        a, b = Dest("10.0.1.1", 80), Dest("10.0.1.2", 80)
        await table.apply(AddService(Service(TCP)))
        await table.apply(AddService(Service(FWM, "rr")))
        for d in (a, b):
            await table.apply(AddDest(TCP, d))
        await table.apply(DeleteDest(TCP, a.key))
        assert (await table.dump())[TCP].dests == {b.key: b}
        await table.apply(DeleteService(TCP))
        assert list(await table.dump()) == [FWM]

    async def test_apply_all_goes_on_after_a_failure(self, table: Any) -> None:
        ops = [AddService(Service(TCP)), AddService(Service(TCP)), AddDest(TCP, Dest("10.0.1.1", 80)),
               AddDest(FWM, Dest("10.0.1.1", 0)), DeleteDest(TCP, DestKey("10.0.1.5", 80)),
               AddDest(TCP, Dest("10.0.1.2", 80))]
        results = await table.apply_all(ops)
        assert [type(r).__name__ for r in results] == [
            "NoneType", "AlreadyExists", "NoneType", "NotFound", "NotFound", "NoneType"]
        assert set((await table.dump())[TCP].dests) == {DestKey("10.0.1.1", 80), DestKey("10.0.1.2", 80)}

    async def test_concurrent_dumps_and_changes_are_serialised(self, table: Any) -> None:
        await table.apply(AddService(Service(TCP)))
        adds = [AddDest(TCP, Dest(f"10.0.2.{i}", 80)) for i in range(1, 41)]
        results = await asyncio.gather(table.dump(), table.apply_all(adds[:20]), table.dump(),
                                       table.apply_all(adds[20:]), table.dump())
        assert results[1] == [None] * 20 and results[3] == [None] * 20
        assert len((await table.dump())[TCP].dests) == 40

    async def test_flush_empties(self, table: Any) -> None:
        await table.apply(AddService(Service(TCP)))
        await table.apply(AddDest(TCP, Dest("10.0.1.1", 80)))
        await table.flush()
        assert await table.dump() == {}

    # ------------------------------------------------------------ the reconciler on this table

    async def test_reconciler_converges_is_idempotent_and_leaves_others_alone(self, table: Any) -> None:
        await table.apply(AddService(Service(OTHER, "rr")))
        await table.apply(AddDest(OTHER, Dest("10.9.0.1", 443)))
        foreign = (await table.dump())[OTHER]
        desired = {
            TCP: entry(Service(TCP, "wrr"), Dest("10.0.1.1", 80, weight=2),
                       Dest("10.0.1.2", 80, Forward.MASQ)),
            FWM: entry(Service(FWM, "rr", persistent=360), Dest("172.17.111.234", 0)),
        }
        rec = Reconciler(table)
        await rec.sync(desired, {TCP, FWM})
        got = await table.dump()
        assert {k: got[k] for k in desired} == desired and got[OTHER] == foreign
        await rec.sync(desired, {TCP, FWM})
        assert rec.last_ops == []
        # a scheduler change is an in-place edit, never a delete + add
        desired[TCP] = entry(Service(TCP, "sh", persistent=30), *desired[TCP].dests.values())
        await rec.sync(desired, {TCP, FWM})
        assert [type(op).__name__ for op in rec.last_ops] == ["EditService"]
        # dropping a virtual deletes it only because it is still in `managed`
        del desired[FWM]
        await rec.sync(desired, {TCP, FWM})
        assert set(await table.dump()) == {TCP, OTHER}

    async def test_resync_repairs_drift_with_readdquiescent(self, table: Any) -> None:
        live, quiet_no, quiet_yes = Dest("10.0.1.1", 80), Dest("10.0.1.2", 80, weight=0, readd=False), \
            Dest("10.0.1.3", 80, weight=0)
        desired = {TCP: entry(Service(TCP, "wrr"), live, quiet_no, quiet_yes)}
        rec = Reconciler(table)
        await rec.sync(desired, {TCP})
        assert set((await table.dump())[TCP].dests) == {live.key, quiet_no.key, quiet_yes.key}
        # by hand: everything deleted, and the live one edited
        for d in (quiet_no, quiet_yes):
            await table.apply(DeleteDest(TCP, d.key))
        await table.apply(EditDest(TCP, Dest("10.0.1.1", 80, Forward.MASQ, 9)))
        await rec.resync()
        # repaired, except the quiesced real with readd=False: it stays out
        assert (await table.dump())[TCP] == entry(Service(TCP, "wrr"), live, quiet_yes)
        # once it is healthy again (weight > 0) it comes back
        desired = {TCP: entry(Service(TCP, "wrr"), live, Dest("10.0.1.2", 80, weight=1), quiet_yes)}
        await rec.sync(desired, {TCP})
        assert len((await table.dump())[TCP].dests) == 3
