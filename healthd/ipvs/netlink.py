"""The kernel's IPVS table over generic netlink: the Backend healthd runs against in production.

pyroute2's AsyncIPVS opens the way (IPVS family lookup, network namespaces); requests and dumps
are then framed by healthd.ipvs.genl on a plain netlink socket, many requests per datagram, each
with its own sequence number and ACK, so a failure is pinned to the operation that caused it.
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
from healthd.ipvs.model import AddService, EditService, Entry, Operation, Table, describe_op
from healthd.process import run_process

SOL_NETLINK = 270
NETLINK_GENERIC = 16
NETLINK_CAP_ACK = 10  # ACKs without a copy of the request: smaller, so more fit in the buffer
SO_RCVBUFFORCE = 33
BATCH = 256  # requests per datagram; their ACKs must fit in the receive buffer
RCVBUF = 8 << 20

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


async def _family_id(netns: str | None) -> int:
    """The IPVS generic netlink family id, loading ip_vs once if the kernel lacks it."""
    from pyroute2.ipvs import AsyncIPVS  # heavy import: only when a kernel table is wanted
    from pyroute2.netlink.exceptions import NetlinkError

    why = ""
    for attempt in range(2):
        ipvs = AsyncIPVS(netns=netns) if netns else AsyncIPVS()
        try:
            await ipvs.setup_endpoint()
            return int(ipvs.prid)
        except NetlinkError as e:
            if e.code != errno.ENOENT:
                raise IPVSError(f"cannot reach IPVS over netlink: {os.strerror(e.code)}", e.code) from None
        finally:
            ipvs.close()
        if attempt == 0:
            why = await _modprobe_ip_vs()
    raise Unavailable(f"this kernel has no IPVS (ip_vs): {why or 'modprobe ip_vs did not make it appear'}",
                      errno.ENOENT)


def _open_socket(netns: str | None) -> socket.socket:
    if netns:
        from pyroute2 import netns as pyroute2_netns

        sock = pyroute2_netns.create_socket(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    else:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
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
    """The kernel's IPVS table in one network namespace. Open with `await NetlinkTable.open()`."""

    def __init__(self, sock: socket.socket, family_id: int, netns: str | None = None) -> None:
        self._sock = sock
        self._family_id = family_id
        self._netns = netns
        self._seq = 0
        self._buf = bytearray(1 << 18)
        # one request stream at a time: the kernel allows one dump per socket, and ACKs
        # are matched to requests by sequence number
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, netns: str | None = None) -> NetlinkTable:
        family_id = await _family_id(netns)
        return cls(_open_socket(netns), family_id, netns)

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
            self._sock = _open_socket(self._netns)
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
            seq = self._next_seq()
            family = svc.key.family
            try:
                dests = await self._dump(genl.dump_dests(self._family_id, seq, svc.key), seq,
                                         lambda p, f=family: genl.decode_dest(p, f))
            except IPVSError as e:
                if e.errno == errno.ESRCH:
                    continue  # deleted between the two dumps
                raise
            table[svc.key] = Entry(svc, {d.key: d for d in dests})
        return table

    async def apply_all(self, ops: Sequence[Operation]) -> list[IPVSError | None]:
        """Carry out `ops` in order; the error of each (None when it succeeded)."""
        results: list[IPVSError | None] = [None] * len(ops)
        loop = asyncio.get_running_loop()
        async with self._lock:
            with self._fresh_socket_on_failure():
                for start in range(0, len(ops), BATCH):
                    if start:
                        await asyncio.sleep(0)  # as in dump: do not hold the event loop for the whole table
                    chunk = ops[start:start + BATCH]
                    base = self._next_seq(len(chunk))
                    data = b"".join(genl.encode(self._family_id, base + i, op) for i, op in enumerate(chunk))
                    await loop.sock_sendall(self._sock, data)
                    pending = len(chunk)
                    while pending:
                        for kind, _flags, seq, payload in genl.messages(await self._recv()):
                            i = seq - base
                            if kind != genl.NLMSG_ERROR or not 0 <= i < len(chunk):
                                continue
                            pending -= 1
                            code = genl.error_code(payload)
                            if code:
                                results[start + i] = error_for(code, chunk[i])
        return results

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
