"""The negotiate check for http, https and http_proxy: one request, a 2xx status, a body matching `receive`.

Why not aiohttp: this check runs 10,000 times a second in one process, and the
numbers decided it (bench/checks.py, one core, nginx on loopback, a fresh
connection per check, CPU time of the checking process only):
    aiohttp 3.14 ClientSession (force_close, ssl=False)   ~MEASURED_AIOHTTP us per check
    this module (asyncio Protocol, HTTP/1.1, close)       ~MEASURED_LEAN us per check
aiohttp builds a request object, a response object, a stream reader, a cookie jar
pass and header multidicts per request; a health check needs a status line and a
bounded body, so it is written here on an asyncio Protocol with a small pure parser
(healthd.checks.httpparse).

Behaviour (as ldirectord, with its weak spots fixed):
- `httpmethod` (GET or HEAD) of `request` on address:port; Host is `virtualhost`, else the
  real's address (IPv6 in brackets, `:port` added when not the scheme's default).
- https: TLS with SNI from `virtualhost`; certificates verified only if ctx.tls says so.
- http_proxy: the real is a proxy, so the request line carries an absolute URL: `request`
  itself when it is one (`http://www.example.com/`), else `http://HOST[:port]/request`.
- Up when the final status is 2xx (redirects are not followed: a 3xx is down) and the
  body, read up to ctx.body_limit bytes and decoded leniently, contains a match of
  receive_re. With no receive pattern the verdict is made on the status line alone,
  without waiting for the body.
- Each connection ends with an RST (SO_LINGER 0) instead of a FIN, so that 10,000
  checks a second leave no TIME_WAIT sockets behind on the checker's side.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct

from healthd import __version__
from healthd.checks.context import CheckContext
from healthd.checks.httpparse import ResponseParser, State
from healthd.checks.receive import BadPattern, compiled, decode
from healthd.checks.spec import CheckSpec, Outcome

_LINGER_RST = struct.pack("ii", 1, 0)  # l_onoff=1, l_linger=0: close() sends RST, no TIME_WAIT
_DEFAULT_PORT = {"http": 80, "https": 443}


def host_header(spec: CheckSpec) -> str:
    """The Host header: `virtualhost` as written, else the real's address and non-default port."""
    if spec.virtualhost:
        return spec.virtualhost
    host = f"[{spec.address}]" if spec.family == 6 else spec.address
    if spec.port != _DEFAULT_PORT.get(spec.scheme or "http"):
        host = f"{host}:{spec.port}"
    return host


def request_target(spec: CheckSpec) -> tuple[str, str]:
    """(request-target for the request line, Host header value)."""
    if spec.service != "http_proxy":
        return spec.request or "/", host_header(spec)
    if "://" in spec.request:
        url = spec.request
    else:
        path = spec.request if spec.request.startswith("/") else "/" + spec.request
        url = f"http://{host_header(spec)}{path}"
    authority = url.split("://", 1)[1].split("/", 1)[0]
    return url, authority


def build_request(spec: CheckSpec) -> bytes:
    """The bytes sent to the real server."""
    target, host = request_target(spec)
    method = spec.httpmethod.upper() or "GET"
    return (
        f"{method} {target} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"User-Agent: healthd/{__version__}\r\n"
        "Accept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1", "replace")


class _Probe(asyncio.Protocol):
    """Sends the request, feeds the reply to the parser, resolves `verdict` once a decision is possible."""

    __slots__ = ("decide_on_status", "parser", "request", "transport", "verdict")

    def __init__(self, request: bytes, parser: ResponseParser, decide_on_status: bool,
                 verdict: asyncio.Future[str | None]) -> None:
        self.request = request
        self.parser = parser
        self.decide_on_status = decide_on_status
        self.verdict = verdict
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        state = parser.feed(data)
        if state is State.BODY:
            if not self.decide_on_status and 200 <= parser.status < 300:
                return
        elif state is State.HEAD:
            return
        self._settle(None)

    def eof_received(self) -> bool:
        self.parser.feed_eof()
        self._settle(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.verdict.done():
            return  # our own abort() after the verdict
        if exc is not None:
            self._settle(_describe(exc))
        else:
            self.parser.feed_eof()
            self._settle(None)

    def _settle(self, failure: str | None) -> None:
        if not self.verdict.done():
            self.verdict.set_result(failure)


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    """One HTTP(S) check of `spec`; the caller (CheckRunner) enforces the deadline."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        pattern = compiled(spec.receive_re) if spec.receive_re is not None else None
    except BadPattern as exc:
        return Outcome(False, str(exc), 0.0)
    parser = ResponseParser(head_only=spec.httpmethod.upper() == "HEAD", body_limit=ctx.body_limit)
    verdict: asyncio.Future[str | None] = loop.create_future()
    probe = _Probe(build_request(spec), parser, pattern is None, verdict)

    family = socket.AF_INET6 if spec.family == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    transport: asyncio.BaseTransport | None = None
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        await loop.sock_connect(sock, (spec.address, spec.port))
        tls = ctx.tls if spec.scheme == "https" else None
        transport, _ = await loop.create_connection(
            lambda: probe, sock=sock, ssl=tls,
            server_hostname=(spec.virtualhost or spec.address) if tls else None,
            ssl_handshake_timeout=spec.deadline if tls else None,
        )
        failure = await verdict
    except (OSError, EOFError) as exc:  # ssl.SSLError is an OSError
        return Outcome(False, _describe(exc), loop.time() - started)
    finally:
        # the transport owns the socket once it exists; before that, it is ours to close
        if transport is not None:
            transport.abort()
        else:
            sock.close()
    latency = loop.time() - started
    if failure is not None:
        return Outcome(False, failure, latency)
    return _judge(parser, pattern, latency)


def _judge(parser: ResponseParser, pattern: object, latency: float) -> Outcome:
    if parser.status == 0:
        return Outcome(False, parser.error or "no HTTP response", latency)
    if not 200 <= parser.status < 300:
        return Outcome(False, f"HTTP {parser.status} {parser.reason}".rstrip(), latency)
    if pattern is None:
        return Outcome(True, f"HTTP {parser.status}", latency)
    if parser.state is State.ERROR:
        return Outcome(False, f"HTTP {parser.status}, then {parser.error}", latency)
    if pattern.search(decode(bytes(parser.body))) is None:  # type: ignore[attr-defined]
        read = f"first {len(parser.body)} bytes of body" if parser.truncated else "body"
        return Outcome(False, f"HTTP {parser.status}, {read} did not match receive", latency)
    return Outcome(True, f"HTTP {parser.status}, body matched", latency)


def _describe(exc: BaseException) -> str:
    """A one-line, human reason for a failed connection."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, EOFError):
        return "connection closed during the TLS handshake"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connection failed: {exc.strerror.lower()}"
    return f"connection failed: {exc}"
