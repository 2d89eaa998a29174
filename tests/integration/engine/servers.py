"""Real HTTP servers on loopback whose behaviour a test can switch: ok, error, refuse, hang, drip."""

from __future__ import annotations

import asyncio
import contextlib
import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Real:
    """One real server at host:port. Modes: ok (200 "ok"), error (500), refuse (nothing listens),
    hang (accepts, never answers), drip (200 with a body trickling one byte a second)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.mode = "ok"
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.set("ok")

    async def set(self, mode: str) -> None:
        self.mode = mode
        if mode == "refuse":
            if self._server is not None:
                self._server.close()  # no wait_closed(): hung handlers would hold it
                self._server = None
            return
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await reader.readuntil(b"\r\n\r\n")
            mode = self.mode
            if mode == "hang":
                await asyncio.sleep(3600)
            elif mode == "drip":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(100000):
                    writer.write(b"x")
                    await writer.drain()
                    await asyncio.sleep(1)
            else:
                status = b"200 OK" if mode == "ok" else b"500 Internal Server Error"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in list(self._handlers):
            t.cancel()
        await asyncio.sleep(0)
