"""Real parts for the daemon tests: web servers on loopback, a notify socket, a healthd process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

HEALTHD = str(Path(sys.executable).parent / "healthd")


class WebServer:
    """One real server: serves ok.html with whatever text the test sets."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self.page = "ok\n"
        self.hits = 0
        self._runner: web.AppRunner | None = None

    @property
    def label(self) -> str:
        return f"{self.address}:{self.port}"

    async def start(self) -> WebServer:
        async def handle(request: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(text=self.page)

        app = web.Application()
        app.router.add_get("/ok.html", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.address, self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def web_servers(addresses: list[str]) -> AsyncIterator[list[WebServer]]:
    """One WebServer per address, all on one free port, stopped when the block ends."""
    from healthd.demo import free_port

    port = free_port(addresses)
    servers = [await WebServer(a, port).start() for a in addresses]
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()


def config_text(vip: str, port: int, reals: list[str], *, weight: int = 2, head: str = "") -> str:
    lines = [
        "checktimeout=2", "checkinterval=1", "quiescent=no", head,
        f"virtual={vip}:{port}",
        *(f"\treal={address}:{port} masq {weight}" for address in reals),
        "\tservice=http", "\tscheduler=wrr", '\trequest="ok.html"', '\treceive="ok"', "\tchecktype=negotiate",
    ]
    return "\n".join(lines) + "\n"


class NotifySocket:
    """The socket systemd would listen on: collects every sd_notify datagram."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    async def wait(self, predicate: Callable[[dict[str, str]], bool], after: int = 0,
                   limit: float = 15.0) -> dict[str, str]:
        """The first message from index `after` on that satisfies `predicate`."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(limit):
            while True:
                for message in self.messages[after:]:
                    if predicate(message):
                        return message
                data = await loop.sock_recv(self.sock, 65536)
                self.messages.append(dict(line.split("=", 1) for line in data.decode().split("\n") if line))

    def close(self) -> None:
        self.sock.close()


class Healthd:
    """`healthd -d --ipvs memory CONFIG start` as a child process, its stderr collected line by line."""

    def __init__(self, config: Path, rundir: Path, notify: NotifySocket | None, extra_env: dict[str, str]):
        self.config = config
        self.env = {**os.environ, "HEALTHD_RUNDIR": str(rundir), **extra_env}
        self.env.pop("NOTIFY_SOCKET", None)
        if notify is not None:
            self.env["NOTIFY_SOCKET"] = str(notify.path)
        self.proc: asyncio.subprocess.Process | None = None
        self.start_args: tuple[str, ...] = ()  # more options before CONFIG, such as ("--http", ADDR)
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Healthd:
        self.proc = await asyncio.create_subprocess_exec(
            HEALTHD, "-d", "--ipvs", "memory", *self.start_args, str(self.config), "start",
            env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    async def cli(self, *args: str) -> tuple[int, str]:
        """Run `healthd ARGS...` as an operator would, against this instance."""
        proc = await asyncio.create_subprocess_exec(
            HEALTHD, *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        return proc.returncode or 0, out.decode()

    async def status(self) -> dict[str, Any]:
        """The live state, read from the control socket as `healthd status --json` reads it."""
        from healthd.daemon import control

        path = Path(self.env["HEALTHD_RUNDIR"]) / f"healthd.{self.config.name}.sock"
        return await asyncio.to_thread(control.query, path)

    async def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], limit: float = 30.0
    ) -> dict[str, Any]:
        """Poll the live state (the daemon may still be starting) until `predicate` holds."""
        from healthd.daemon import control

        async with asyncio.timeout(limit):
            while True:
                with contextlib.suppress(control.ControlUnavailable):
                    status = await self.status()
                    if predicate(status):
                        return status
                if self.proc is not None and self.proc.returncode is not None:
                    raise AssertionError(f"healthd exited {self.proc.returncode}:\n{self.text()}")
                await asyncio.sleep(0.1)

    def text(self) -> str:
        return "\n".join(self.lines)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


def reals_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["real"]: r for v in status["virtuals"] for r in v["reals"]}


class TinyWebFarm:
    """Many real servers at once: one small HTTP/1.0 responder per loopback address, same port."""

    def __init__(self, addresses: list[str], port: int) -> None:
        self.port = port
        self.pages = dict.fromkeys(addresses, "ok\n")
        self.hits = dict.fromkeys(addresses, 0)
        self._servers: list[asyncio.Server] = []

    async def start(self) -> TinyWebFarm:
        for address in self.pages:
            self._servers.append(await asyncio.start_server(self._responder(address), address, self.port))
        return self

    async def add(self, address: str) -> None:
        self.pages[address] = "ok\n"
        self.hits[address] = 0
        self._servers.append(await asyncio.start_server(self._responder(address), address, self.port))

    def _responder(self, address: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
        async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                self.hits[address] += 1
                body = self.pages[address].encode()
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                await writer.drain()
            except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        return respond

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
