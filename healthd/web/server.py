"""The read-only HTTP server inside healthd (`--http ADDR:PORT`): the status page, /status.json and /metrics.

Off unless asked for. It answers GET and HEAD on three paths and changes nothing.
A client can cost healthd little, whatever it does:
- at most MAX_CONNECTIONS connections at once: a new one pushes out the oldest that
  is not being answered (idle, or still trickling its headers), so slow-loris
  clients evict each other, not the scrapers; when all are being answered, the
  new one is closed at once;
- every connection lives at most CONNECTION_LIFETIME seconds (a slow-loris client
  trickling its headers is cut off), and an idle keep-alive connection IDLE seconds;
- documents are built at most once per MAX_AGE seconds, however many clients ask
  (one build at a time, shared by everyone waiting), and built in slices, so a
  10,000-real scrape never holds the event loop for long; a build that took long
  (about 1 s of /metrics at 10,000 reals) is served for BUILD_SHARE times as long
  again, so that scrapers can never take more than a small share of the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from healthd.daemon import status
from healthd.web import metrics
from healthd.web.telemetry import Telemetry

log = logging.getLogger("healthd.web")

MAX_CONNECTIONS = 32
CONNECTION_LIFETIME = 30.0  # seconds
IDLE = 5.0  # seconds a keep-alive connection may wait for its next request
MAX_AGE = 1.0  # seconds a built document is served again
BUILD_SHARE = 5  # ... or this many times as long as it took to build, whichever is longer
SAFE_DEFAULT = "127.0.0.1:9180"  # what the README suggests: loopback only

PAGE = resources.files("healthd.web").joinpath("page.html").read_bytes()


class Source(Protocol):
    """What the server shows: the status document and the counters behind /metrics."""

    telemetry: Telemetry

    async def status_document(self) -> dict[str, Any]:
        """The document `healthd status --json` prints."""
        ...


class ListenError(ValueError):
    pass


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:9180`, `[::1]:9180` or `0.0.0.0:9180` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ListenError(f"--http {text!r}: expected ADDRESS:PORT, such as {SAFE_DEFAULT}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ListenError(f"--http {text!r}: {host!r} is not an IP address (such as {SAFE_DEFAULT})") \
            from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"--http {text!r}: the port must be a number between 1 and 65535")
    return str(address), int(port)


class _Cached:
    """One document, rebuilt at most every MAX_AGE seconds, by one build at a time."""

    def __init__(self, build: Callable[[], Awaitable[bytes]], max_age: float) -> None:
        self._build = build
        self._max_age = max_age
        self._value: bytes | None = None
        self._fresh_until = 0.0
        self._task: asyncio.Task[bytes] | None = None

    async def get(self) -> bytes:
        if self._value is not None and time.monotonic() < self._fresh_until:
            return self._value
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        # shield: a client that hangs up does not cancel the build the others wait for
        return await asyncio.shield(self._task)

    async def _run(self) -> bytes:
        try:
            started = time.monotonic()
            with status.collection_paused():
                value = await self._build()
            done = time.monotonic()
            self._value = value
            self._fresh_until = done + max(self._max_age, BUILD_SHARE * (done - started)) \
                if self._max_age > 0 else done
            return value
        finally:
            self._task = None


class _GuardedServer(web.Server):
    """aiohttp's low-level server, with a cap on connections and on each connection's life."""

    def __init__(self, handler: Any, *, max_connections: int, lifetime: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.lifetime = lifetime
        self.refused = 0
        self.evicted = 0
        self._timers: dict[RequestHandler, asyncio.TimerHandle] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self._timers) >= self.max_connections and not self._evict_one():
            self.refused += 1
            transport.abort()
            return
        self._timers[handler] = self._loop.call_later(self.lifetime, transport.abort)

    def _evict_one(self) -> bool:
        """Close the oldest connection without a request being answered; False if there is none."""
        for handler in self._timers:  # insertion order: oldest first
            if getattr(handler, "_current_request", None) is None:
                transport = self._connections.get(handler)
                self._timers.pop(handler).cancel()
                if transport is not None:
                    transport.abort()
                self.evicted += 1
                return True
        return False

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        timer = self._timers.pop(handler, None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(handler, exc)


class WebServer:
    def __init__(self, host: str, port: int, source: Source, *, max_connections: int = MAX_CONNECTIONS,
                 lifetime: float = CONNECTION_LIFETIME, idle: float = IDLE, max_age: float = MAX_AGE) -> None:
        self.host = host
        self.port = port
        self.source = source
        self.max_connections = max_connections
        self.lifetime = lifetime
        self.idle = idle
        self._document = _Cached(self._build_document, max_age)
        self._metrics = _Cached(self._build_metrics, max_age)
        self._last_document: dict[str, Any] = {}
        self._server: _GuardedServer | None = None
        self._listener: asyncio.Server | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def refused(self) -> int:
        return self._server.refused if self._server is not None else 0

    async def start(self) -> None:
        self._server = _GuardedServer(
            self._handle, max_connections=self.max_connections, lifetime=self.lifetime,
            keepalive_timeout=self.idle, access_log=None, max_line_size=2048, max_field_size=2048,
            max_headers=32, lingering_time=1.0,
        )
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._server, self.host, self.port, reuse_address=True,
                                                  backlog=64)
        if self.port == 0:
            self.port = int(self._listener.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.shutdown(1.0)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listener.wait_closed(), 2.0)
            self._listener = None

    # -- documents --------------------------------------------------------------------------

    async def _build_document(self) -> bytes:
        document = await self.source.status_document()
        self._last_document = document
        return await status.encode(document)

    async def _build_metrics(self) -> bytes:
        await self._document.get()  # the same picture the page shows, and the same cache
        return await metrics.exposition(self._last_document, self.source.telemetry)

    # -- requests ---------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="read-only: GET or HEAD\n", headers={"Allow": "GET, HEAD"})
        path = request.path
        if path in ("/", "/index.html"):
            body, kind = PAGE, "text/html; charset=utf-8"
        elif path == "/status.json":
            body, kind = await self._document.get(), "application/json"
        elif path == "/metrics":
            body, kind = await self._metrics.get(), metrics.CONTENT_TYPE
        else:
            return web.Response(status=404, text="not found: try /, /status.json or /metrics\n")
        headers = {"Content-Type": kind, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if path in ("/", "/index.html"):
            headers["Content-Security-Policy"] = (
                "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
                "connect-src 'self'; img-src data:")
        return web.Response(body=body, headers=headers)
