"""The kernel's IPVS table over generic netlink: the Backend healthd runs against in production.

Everything goes over a plain generic netlink socket, framed by healthd.ipvs.genl: the IPVS family
lookup, then requests, many per datagram, each with its own sequence number and ACK, so a failure is
pinned to the operation that caused it. No netlink library: Debian 12's python3-pyroute2 (0.7) lacks
the IPVS module, and importing pyroute2 took 3.5-8 s in the emulated test VM.
A table in another network namespace: run healthd in that namespace (`ip netns exec`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from healthd.ipvs import genl
from healthd.ipvs.backend import AlreadyExists, IPVSError, NotFound, Unavailable
from healthd.ipvs.model import (
    AddService,
    Dest,
    DestKey,
    EditService,
    Entry,
    Operation,
    ServiceKey,
    Table,
    describe_op,
)
from healthd.process import run_process

SOL_NETLINK = 270
NETLINK_GENERIC = 16
NETLINK_CAP_ACK = 10  # ACKs without a copy of the request: smaller, so more fit in the buffer
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
BATCH = 1024  # requests per datagram (~140 KB); the refusals of a whole batch fit in the receive buffer,
# and the kernel works through one in a few ms, so the event loop is not held long
RCVBUF = 8 << 20
SNDBUF = 1 << 20  # a whole batch goes out in one datagram, which must fit in the send buffer
FAMILY_LOOKUP_TIMEOUT = 10.0  # seconds; the kernel answers at once, but never hang a start on it

T = TypeVar("T")
MODPROBE_LIMIT = 30.0  # seconds loading ip_vs may take


async def _modprobe_ip_vs() -> str:
    """Load ip_vs; return '' on success, else why not."""
    result = await run_process(["modprobe", "ip_vs"], MODPROBE_LIMIT)
    if result.returncode is None:
        return result.error or "modprobe ip_vs did not run"
    if result.returncode:
        lines = result.output.strip().splitlines()
        return lines[-1] if lines else f"modprobe ip_vs exited with {result.returncode}"
    return ""


async def _ask_family_id() -> int | None:
    """The IPVS family id from the generic netlink controller; None when the kernel has no such family."""
    sock = _open_socket()
    try:
        await asyncio.get_running_loop().sock_sendall(sock, genl.get_family(1))
        buf = bytearray(1 << 16)
        while True:
            n = await asyncio.get_running_loop().sock_recv_into(sock, buf)
            for kind, _flags, seq, payload in genl.messages(memoryview(buf)[:n]):
                if seq != 1:
                    continue
                if kind == genl.NLMSG_ERROR:
                    code = genl.error_code(payload)
                    if code == errno.ENOENT:
                        return None
                    raise IPVSError(f"cannot reach IPVS over netlink: {os.strerror(code)}", code)
                if kind == genl.GENL_ID_CTRL:
                    return genl.family_id_of(payload)
    except OSError as e:
        code = e.errno or 0
        raise IPVSError(f"cannot reach IPVS over netlink: {os.strerror(code)}", code) from None
    except genl.DecodeError as e:
        raise IPVSError(f"cannot reach IPVS over netlink: {e}") from None
    finally:
        sock.close()


async def _family_id() -> int:
    """The IPVS generic netlink family id, loading ip_vs once if the kernel lacks it."""
    why = ""
    for attempt in range(2):
        try:
            family = await asyncio.wait_for(_ask_family_id(), FAMILY_LOOKUP_TIMEOUT)
        except TimeoutError:
            raise IPVSError("cannot reach IPVS over netlink: the kernel did not answer") from None
        if family is not None:
            return family
        if attempt == 0:
            why = await _modprobe_ip_vs()
    raise Unavailable(f"this kernel has no IPVS (ip_vs): {why or 'modprobe ip_vs did not make it appear'}",
                      errno.ENOENT)


def _open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SNDBUF)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
    sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    sock.setblocking(False)
    sock.bind((0, 0))
    return sock


def error_for(code: int, op: Operation) -> IPVSError:
    """The healthd error for the kernel's answer `code` (an errno) to `op`."""
    what = describe_op(op)
    if code == errno.EEXIST:
        return AlreadyExists(f"{what}: already there", code)
    if code == errno.ESRCH:
        return NotFound(f"{what}: no such service", code)
    if code == errno.ENOENT:
        if isinstance(op, AddService | EditService):
            # for a service, ENOENT means the scheduler or persistence engine module is missing
            svc = op.service
            extra = f" or persistence engine {svc.pe_name!r}" if svc.pe_name else ""
            return IPVSError(f"{what}: the kernel has no scheduler {svc.scheduler!r}{extra}", code)
        return NotFound(f"{what}: no such real server", code)
    if code == errno.EPERM:
        return Unavailable(f"{what}: not permitted (needs root or CAP_NET_ADMIN)", code)
    return IPVSError(f"{what}: {os.strerror(code)}", code)


class NetlinkTable:
    """The kernel's IPVS table in this process's network namespace. Open with `await NetlinkTable.open()`."""

    def __init__(self, sock: socket.socket, family_id: int) -> None:
        self._sock = sock
        self._family_id = family_id
        self._seq = 0
        self._buf = bytearray(1 << 18)
        # one request stream at a time: the kernel allows one dump per socket, and ACKs
        # are matched to requests by sequence number
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls) -> NetlinkTable:
        family_id = await _family_id()
        return cls(_open_socket(), family_id)

    async def close(self) -> None:
        self._sock.close()

    @contextlib.contextmanager
    def _fresh_socket_on_failure(self) -> Iterator[None]:
        """After a failure or a cancellation half-way through a request the socket may still hold
        an unfinished dump (the kernel then refuses the next one with EBUSY) or stray ACKs: start over
        on a new socket rather than try to resynchronise."""
        try:
            yield
        except BaseException:
            self._sock.close()
            self._sock = _open_socket()
            raise

    def _next_seq(self, count: int = 1) -> int:
        first = self._seq + 1
        self._seq += count
        return first

    async def _recv(self) -> memoryview:
        loop = asyncio.get_running_loop()
        try:
            n = await loop.sock_recv_into(self._sock, self._buf)
        except OSError as e:
            raise IPVSError(f"netlink receive failed: {os.strerror(e.errno or 0)}", e.errno or 0) from None
        return memoryview(self._buf)[:n]

    async def _dump(self, request: bytes, seq: int, decode: Callable[[memoryview], T]) -> list[T]:
        await asyncio.get_running_loop().sock_sendall(self._sock, request)
        out: list[T] = []
        while True:
            for kind, _flags, mseq, payload in genl.messages(await self._recv()):
                if mseq != seq:
                    continue  # a late answer to an abandoned request
                if kind == genl.NLMSG_DONE:
                    return out
                if kind == genl.NLMSG_ERROR:
                    code = genl.error_code(payload)
                    raise IPVSError(f"dump the IPVS table: {os.strerror(code)}", code)
                out.append(decode(payload))

    async def dump(self) -> Table:
        async with self._lock:
            with self._fresh_socket_on_failure():
                try:
                    return await self._dump_all()
                except genl.DecodeError as e:
                    raise IPVSError(f"dump the IPVS table: {e}") from None

    async def _dump_all(self) -> Table:
        seq = self._next_seq()
        services = await self._dump(genl.dump_services(self._family_id, seq), seq, genl.decode_service)
        table: dict = {}
        for svc in services:
            await asyncio.sleep(0)  # a big table takes a while to read: let health checks run meanwhile
            dests = await self._dump_dests(svc.key)
            if dests is not None:  # None: deleted between the two dumps
                table[svc.key] = Entry(svc, dests)
        return table

    async def _dump_dests(self, key: ServiceKey) -> dict[DestKey, Dest] | None:
        """The real servers of one service; None when the service is gone."""
        seq = self._next_seq()
        await asyncio.get_running_loop().sock_sendall(self._sock, genl.dump_dests(self._family_id, seq, key))
        decoder = genl.DestDecoder(key.family)
        out: dict[DestKey, Dest] = {}
        while True:
            code = decoder.feed(await self._recv(), seq, out)
            if code == 0:
                return out
            if code == errno.ESRCH:
                return None
            if code is not None:
                raise IPVSError(f"dump the IPVS table: {os.strerror(code)}", code)

    async def apply_all(self, ops: Sequence[Operation]) -> list[IPVSError | None]:
        """Carry out `ops` in order; the error of each (None when it succeeded).

        BATCH requests go out in one datagram and only the last asks for an ACK (genl.encode_batch): the
        kernel answers the others only when it refuses one, with that request's sequence number, so a
        refusal still costs only its own entry and is pinned to it, and the batch's ACK ends the reading.
        """
        results: list[IPVSError | None] = [None] * len(ops)
        loop = asyncio.get_running_loop()
        async with self._lock:
            with self._fresh_socket_on_failure():
                for start in range(0, len(ops), BATCH):
                    if start:
                        await asyncio.sleep(0)  # as in dump: do not hold the event loop for the whole table
                    chunk = ops[start:start + BATCH]
                    base = self._next_seq(len(chunk))
                    await loop.sock_sendall(self._sock, genl.encode_batch(self._family_id, base, chunk))
                    if not await self._read_answers(chunk, base, results, start):
                        self._sock.close()  # answers were lost: start the next batch on a clean socket
                        self._sock = _open_socket()
        return results

    async def _read_answers(self, chunk: Sequence[Operation], base: int, results: list[IPVSError | None],
                            start: int) -> bool:
        """Read the kernel's answers to one batch into `results` until the last request's ACK; False when
        the receive buffer overflowed (ENOBUFS), so some refusals are unknown: every request not known to
        be refused then counts as failed with ENOBUFS, which the reconciler retries after a fresh dump."""
        last = len(chunk) - 1
        while True:
            try:
                data = await self._recv()
            except IPVSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                for i, op in enumerate(chunk):
                    if results[start + i] is None:
                        results[start + i] = error_for(errno.ENOBUFS, op)
                return False
            for kind, _flags, seq, payload in genl.messages(data):
                i = seq - base
                if kind != genl.NLMSG_ERROR or not 0 <= i <= last:
                    continue  # a late answer to an abandoned request
                code = genl.error_code(payload)
                if code:
                    results[start + i] = error_for(code, chunk[i])
                if i == last:
                    return True

    async def apply(self, op: Operation) -> None:
        (error,) = await self.apply_all([op])
        if error is not None:
            raise error

    async def flush(self) -> None:
        """Delete every service (ipvsadm -C). For tests and benchmarks."""
        async with self._lock:
            with self._fresh_socket_on_failure():
                seq = self._next_seq()
                await asyncio.get_running_loop().sock_sendall(self._sock, genl.flush(self._family_id, seq))
                while True:
                    for kind, _flags, mseq, payload in genl.messages(await self._recv()):
                        if kind == genl.NLMSG_ERROR and mseq == seq:
                            code = genl.error_code(payload)
                            if code:
                                raise IPVSError(f"flush the IPVS table: {os.strerror(code)}", code)
                            return
