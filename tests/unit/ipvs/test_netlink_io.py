"""The netlink table's request/answer bookkeeping, against a fake kernel on a socket pair: batched
ACKs matched to their operations, errors mapped, stray answers ignored, dumps read to NLMSG_DONE."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from healthd.ipvs import genl
from healthd.ipvs.backend import AlreadyExists, IPVSError, NotFound
from healthd.ipvs.model import AddDest, AddService, Dest, Entry, Forward, Service
from healthd.ipvs.netlink import NetlinkTable
from tests.unit.ipvs.contract import TCP, UDP6

FAMILY = 42

Answer = Callable[[int, int, memoryview], list[bytes]]  # (cmd, seq, payload) -> datagram parts


def nlmsg(kind: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 0, seq, 0) + body


def ack(seq: int, code: int = 0) -> bytes:
    return nlmsg(genl.NLMSG_ERROR, seq, struct.pack("=i", -code) + bytes(16))


class FakeKernel:
    def __init__(self, answer: Answer) -> None:
        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.ours.setblocking(False)
        self.answer = answer
        self.requests = 0

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.ours, 1 << 20)
            out = b""
            for _kind, flags, seq, payload in genl.messages(data):
                self.requests += 1
                for part in self.answer(payload[0], seq, payload):
                    # as netlink_rcv_skb: a request without NLM_F_ACK is answered only when it fails
                    if flags & genl.NLM_F_ACK or part != ack(seq):
                        out += part
            await loop.sock_sendall(self.ours, out)


@pytest.fixture
async def kernel_and_table(request: pytest.FixtureRequest) -> AsyncIterator[tuple[FakeKernel, NetlinkTable]]:
    fake = FakeKernel(request.param)
    fake.theirs.setblocking(False)
    server = asyncio.create_task(fake.serve())
    table = NetlinkTable(fake.theirs, FAMILY)
    yield fake, table
    server.cancel()
    await asyncio.gather(server, return_exceptions=True)
    await table.close()
    fake.ours.close()


def refuse_some(cmd: int, seq: int, payload: memoryview) -> list[bytes]:
    # a stray ACK for a request nobody made comes first, then the real answer
    codes = {6: errno.EEXIST, 300: errno.ESRCH, 301: errno.ENOENT, 599: errno.ENOMEM}
    return [ack(seq + 100000), ack(seq, codes.get(seq, 0))]


@pytest.mark.parametrize("kernel_and_table", [refuse_some], indirect=True)
async def test_batched_acks_land_on_their_operations(kernel_and_table) -> None:
    fake, table = kernel_and_table
    ops = [AddDest(TCP, Dest(f"10.7.{i // 250}.{i % 250 + 1}", 80)) for i in range(600)]
    results = await table.apply_all(ops)
    assert fake.requests == 600
    wrong = {i: r for i, r in enumerate(results) if r is not None}
    # sequence numbers start at 1: op i went out with seq i + 1
    assert set(wrong) == {5, 299, 300, 598}
    assert isinstance(wrong[5], AlreadyExists) and "10.7.0.6:80" in str(wrong[5])
    assert isinstance(wrong[299], NotFound) and "no such service" in str(wrong[299])
    assert isinstance(wrong[300], NotFound) and "no such real server" in str(wrong[300])
    assert type(wrong[598]) is IPVSError and wrong[598].errno == errno.ENOMEM


def no_scheduler(cmd: int, seq: int, payload: memoryview) -> list[bytes]:
    return [ack(seq, errno.ENOENT)]


@pytest.mark.parametrize("kernel_and_table", [no_scheduler], indirect=True)
async def test_enoent_on_a_service_names_the_scheduler(kernel_and_table) -> None:
    _, table = kernel_and_table
    with pytest.raises(IPVSError) as e:
        await table.apply(AddService(Service(TCP, "wrr")))
    assert not isinstance(e.value, NotFound) and "scheduler 'wrr'" in str(e.value)


SERVICES = [Service(TCP, "wrr"), Service(UDP6, "sh", persistent=60, netmask=64)]
DESTS = {TCP: [Dest("10.0.1.1", 80, Forward.MASQ, 3), Dest("10.0.1.2", 80, weight=0)], UDP6: []}


def dumps(cmd: int, seq: int, payload: memoryview) -> list[bytes]:
    def as_answer(request: bytes) -> bytes:  # a request's body is laid out as a dump answer's
        return nlmsg(FAMILY, seq, request[16:])

    if cmd == genl.CMD_GET_SERVICE:
        # one service per datagram part, a stray answer in between, then DONE
        parts = [as_answer(genl.encode(FAMILY, seq, AddService(s))) for s in SERVICES]
        return [parts[0], ack(seq + 7), *parts[1:], nlmsg(genl.NLMSG_DONE, seq, bytes(4))]
    key = genl.decode_service(payload)  # the dest dump names its service the same way
    return [*(as_answer(genl.encode(FAMILY, seq, AddDest(key.key, d))) for d in DESTS[key.key]),
            nlmsg(genl.NLMSG_DONE, seq, bytes(4))]


@pytest.mark.parametrize("kernel_and_table", [dumps], indirect=True)
async def test_dump_reads_services_then_their_reals(kernel_and_table) -> None:
    _, table = kernel_and_table
    got = await table.dump()
    assert got == {s.key: Entry(s, {d.key: d for d in DESTS[s.key]}) for s in SERVICES}


def refuse_across_batches(cmd: int, seq: int, payload: memoryview) -> list[bytes]:
    # the last request of the first batch, one in the middle of the second, the very last one
    return [ack(seq, errno.ERANGE if seq in (BATCH, BATCH + 500, 2 * BATCH + 100) else 0)]


BATCH = 1024


@pytest.mark.parametrize("kernel_and_table", [refuse_across_batches], indirect=True)
async def test_one_ack_per_batch_and_refusals_pinned_to_their_requests(kernel_and_table) -> None:
    from healthd.ipvs import netlink

    assert netlink.BATCH == BATCH
    fake, table = kernel_and_table
    ops = [AddDest(TCP, Dest(f"10.8.{i // 250}.{i % 250 + 1}", 80)) for i in range(2 * BATCH + 100)]
    received = 0
    real_recv = table._recv

    async def counting_recv() -> memoryview:
        nonlocal received
        received += 1
        return await real_recv()

    table._recv = counting_recv  # type: ignore[method-assign]
    results = await table.apply_all(ops)
    assert fake.requests == len(ops)
    refused = {i for i, r in enumerate(results) if r is not None}
    assert refused == {BATCH - 1, BATCH + 499, 2 * BATCH + 99}
    assert all(r is None or r.errno == errno.ERANGE for r in results)
    assert "add real 10.8.6.24:80 " in str(results[BATCH + 499])  # op 1523: the real the kernel refused
    assert received <= 3  # one datagram of answers per batch, not one receive per request


def ok(cmd: int, seq: int, payload: memoryview) -> list[bytes]:
    return [ack(seq)]


@pytest.mark.parametrize("kernel_and_table", [ok], indirect=True)
async def test_lost_answers_count_as_enobufs_and_the_socket_is_replaced(kernel_and_table) -> None:
    """The receive buffer overflowed (ENOBUFS): the batch's unknown results are transient failures (the
    reconciler dumps and tries again), and the next batch starts on a new socket."""
    _, table = kernel_and_table

    async def overflowed() -> memoryview:
        raise IPVSError("netlink receive failed: No buffer space available", errno.ENOBUFS)

    table._recv = overflowed  # type: ignore[method-assign]
    old = table._sock
    results = await table.apply_all([AddDest(TCP, Dest("10.9.0.1", 80)), AddDest(TCP, Dest("10.9.0.2", 80))])
    assert [r.errno if r else None for r in results] == [errno.ENOBUFS, errno.ENOBUFS]
    assert "10.9.0.2:80" in str(results[1])
    assert table._sock is not old and old.fileno() == -1
