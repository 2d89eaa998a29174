"""Real servers on loopback for the check tests: well-behaved ones and hostile ones.

Each server is an asyncio server on 127.0.0.1 (or ::1) and a port the kernel picks;
`behaviour` decides what happens after the request head has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[3]

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


@dataclass
class Server:
    host: str
    port: int
    heads: list[bytes] = field(default_factory=list)  # request heads received, in order
    sni: list[str | None] = field(default_factory=list)  # TLS server names seen
    connections: int = 0


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return await reader.readuntil(b"\r\n\r\n")
    return b""


@contextlib.asynccontextmanager
async def serve(behaviour: Behaviour, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None,
                read_head: bool = True) -> AsyncIterator[Server]:
    """A server running `behaviour` for every connection, until the block ends."""
    server_info = Server(host, 0)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        server_info.connections += 1
        try:
            head = await _read_head(reader) if read_head else b""
            if head:
                server_info.heads.append(head)
            await behaviour(reader, writer, head)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    if tls is not None:
        def on_sni(sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            server_info.sni.append(name)
        tls.sni_callback = on_sni  # type: ignore[assignment]
    server = await asyncio.start_server(handle, host, 0, ssl=tls)
    server_info.port = server.sockets[0].getsockname()[1]
    try:
        yield server_info
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def reply(raw: bytes) -> Behaviour:
    """Answer with `raw`, then close."""
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(raw)
        await writer.drain()
    return behaviour


def ok(body: bytes = b"all good\n", status: str = "200 OK", headers: str = "") -> Behaviour:
    return reply(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}Connection: close\r\n\r\n"
                 .encode() + body)


def redirect(location: str, status: str = "302 Found") -> Behaviour:
    return ok(b"moved\n", status, f"Location: {location}\r\n")


def routed(table: dict[str, Behaviour], default: Behaviour | None = None) -> Behaviour:
    """Answer by request-target (the second word of the request line); 404 for any other."""
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        words = head.split(b" ", 2)
        target = words[1].decode("latin-1") if len(words) > 2 else ""
        await table.get(target, default or ok(b"not here\n", "404 Not Found"))(reader, writer, head)
    return behaviour


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
    """Accept and never answer."""
    await asyncio.sleep(3600)


def drip(prefix: bytes, piece: bytes = b"x", every: float = 0.05) -> Behaviour:
    """Send `prefix`, then `piece` every `every` seconds, forever."""
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(prefix)
        while True:
            await asyncio.sleep(every)
            writer.write(piece)
            await writer.drain()
    return behaviour


async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
    """A 200 with a body that never ends, sent as fast as the client reads it."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    block = b"endless body, no match here\n" * 2048
    while True:
        writer.write(block)
        await writer.drain()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
    """Something that is not HTTP, then silence (the connection stays open)."""
    writer.write(b"\x00\xff\x13garbage, not HTTP at all\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(3600)


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
    """Close with an RST instead of answering."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def not_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
    """Answer a TLS ClientHello with plain HTTP, then keep the connection open."""
    await reader.read(1)
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(3600)


# Behaviours a separate process can run (see serve_elsewhere): name -> (behaviour, read_head)
NAMED: dict[str, tuple[Behaviour, bool]] = {
    "hang": (hang, True),
    "hang-before-tls": (hang, False),
    "drip-head": (drip(b"HTTP/1.1 200 OK\r\n", b"X-Drip: 1\r\n"), True),
    "drip-body": (drip(b"HTTP/1.1 200 OK\r\n\r\n"), True),
    "endless": (endless, True),
    "garbage": (garbage, True),
    "reset": (reset, True),
    "not-tls": (not_tls, False),
}


@contextlib.asynccontextmanager
async def serve_elsewhere(name: str, host: str = "127.0.0.1") -> AsyncIterator[Server]:
    """A NAMED server in a process of its own, so that its work does not load the checker's loop.

    Hostile servers live on other machines in real life; in the same event loop an
    endless-body server would compete with the checks it is meant to disturb.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.checks.servers", name, host, cwd=_REPO_ROOT,
        stdout=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = await proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"server {name} did not start: {line!r}")
        yield Server(host, int(line))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _serve_forever(name: str, host: str) -> None:
    behaviour, read_head = NAMED[name]
    async with serve(behaviour, host=host, read_head=read_head) as srv:
        print(srv.port, flush=True)
        await asyncio.sleep(600)  # bounded: the test kills it long before


if __name__ == "__main__":
    asyncio.run(_serve_forever(sys.argv[1], sys.argv[2]))
