"""The kernel table stays usable after a request is abandoned (a cancelled dump or batch), and big
requests give the event loop a turn now and then."""

import asyncio
from typing import Any

from healthd.ipvs import netlink
from healthd.ipvs.model import AddDest, AddService, Dest, Family, Service, ServiceKey, ServiceProtocol
from tests.unit.ipvs.contract import TCP


async def test_cancelled_dump_leaves_the_table_usable(table: Any) -> None:
    keys = [ServiceKey(Family.INET, ServiceProtocol.TCP, f"10.5.0.{i}", 80) for i in range(1, 31)]
    ops = [AddService(Service(k)) for k in keys]
    ops += [AddDest(k, Dest(f"10.6.{n}.{j}", 80)) for n, k in enumerate(keys) for j in range(1, 21)]
    assert await table.apply_all(ops) == [None] * len(ops)
    task = asyncio.create_task(table.dump())
    for _ in range(3):
        await asyncio.sleep(0)
    assert not task.done()  # the dump lets the loop run between services
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    dumped = await table.dump()
    assert sorted(dumped) == sorted(keys) and all(len(e.dests) == 20 for e in dumped.values())


async def test_cancelled_batch_leaves_the_table_usable(table: Any) -> None:
    await table.apply(AddService(Service(TCP)))
    count = 3 * netlink.BATCH  # three datagrams: the cancellation lands between two of them
    adds = [AddDest(TCP, Dest(f"10.4.{i // 250}.{i % 250 + 1}", 80)) for i in range(count)]
    task = asyncio.create_task(table.apply_all(adds))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    present = (await table.dump())[TCP].dests
    assert 0 < len(present) < count  # some batches went through, not all
    rest = [op for op in adds if op.dest.key not in present]
    assert await table.apply_all(rest) == [None] * len(rest)
    assert len((await table.dump())[TCP].dests) == count
