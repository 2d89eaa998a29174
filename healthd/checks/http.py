"""The negotiate check for http, https and http_proxy: one request, a 2xx status, a body matching `receive`.

Why not aiohttp: this check must run 10,000 times a second in one process, and a
client that builds request/response objects and header multidicts per request cost
~4.5x the CPU of this module (the measurements: bench/checks_results.md, `./run bench checks`).
A health check needs a status line and a bounded body, so it is written here directly
on readiness callbacks (class _Exchange), with its sockets watched through one private
epoll (healthd.checks.poller) and a small pure parser (healthd.checks.httpparse).

Behaviour (as ldirectord, with its weak spots fixed):
- `httpmethod` (GET or HEAD) of `request` on address:port; Host is `virtualhost`, else the
  real's address (IPv6 in brackets, `:port` added when not the scheme's default).
- https: TLS as spec.tls says (healthd.checks.tls: by default the chain is verified and the
  name is not, as Debian's ldirectord does); SNI from `virtualhost` (or `tlsname`). The real's
  TLS session is resumed from one check to the next (healthd.checks.tlsresume): a resumed
  handshake costs a fraction of a full one.
- http_proxy: the real is a proxy, so the request line carries an absolute URL: `request`
  itself when it is one (`http://www.example.com/`), else `http://HOST[:port]/request`.
- Redirects (301, 302, 303, 307, 308) are followed as ldirectord's LWP does, up to 7,
  but only while they stay on this real (healthd.checks.redirect); each hop is a new
  connection. Up when the final status is 2xx and the
  body, read up to ctx.body_limit bytes and decoded leniently, contains a match of
  receive_re. With no receive pattern the verdict is made on the status line alone,
  without waiting for the body.
- Each connection ends with an RST (SO_LINGER 0) instead of a FIN, so that 10,000
  checks a second leave no TIME_WAIT sockets behind on the checker's side.
"""

from __future__ import annotations

import asyncio
import re
import select
import socket
import ssl
import string
from urllib.parse import quote

from healthd import __version__, vocab
from healthd.checks import failures, sslsession
from healthd.checks.context import CheckContext
from healthd.checks.httpparse import ParseState, ResponseParser
from healthd.checks.poller import Poller
from healthd.checks.receive import BadPattern, compiled, decode
from healthd.checks.redirect import MAX_REDIRECTS, REDIRECT_STATUSES, Refused, next_hop
from healthd.checks.sockets import reset_on_close
from healthd.checks.spec import CheckSpec, Outcome
from healthd.checks.tls import TlsSetupError, policy_of

_READ = select.EPOLLIN
_WRITE = select.EPOLLOUT
_READ_WRITE = select.EPOLLIN | select.EPOLLOUT
_READ_OR_ERROR = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
_DEFAULT_PORT = {"http": 80, "https": 443}


def wants_more(state: ParseState, parser: ResponseParser, decide_on_status: bool) -> bool:
    """The answer read so far cannot decide the check: its head is incomplete, or a 2xx body is
    still needed (for `receive`); a non-2xx status decides at once, whatever follows it."""
    return state is ParseState.HEAD or (
        state is ParseState.BODY and not decide_on_status and 200 <= parser.status < 300)


def host_header(spec: CheckSpec) -> str:
    """The Host header: `virtualhost` as written, else the real's address and non-default port."""
    if spec.virtualhost:
        return spec.virtualhost
    if spec.port == _DEFAULT_PORT.get(spec.scheme):
        return vocab.host(spec.address)
    return vocab.host_port(spec.address, spec.port)


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


def build_request(spec: CheckSpec, target: str | None = None, host: str | None = None) -> bytes:
    """The bytes sent to the real server; ValueError if `request` or the host would break the request.

    `target` and `host` replace the request-target and Host of `spec` (a followed redirect).
    """
    if target is None or host is None:
        target, host = request_target(spec)
    if any(c in target or c in host for c in "\r\n"):
        raise ValueError("request or virtualhost contains a line break")
    # a request-target is ASCII: spaces and non-ASCII characters are percent-encoded (UTF-8)
    target = quote(target, safe=string.punctuation)
    method = spec.httpmethod.upper() or "GET"
    return (
        f"{method} {target} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"User-Agent: healthd/{__version__}\r\n"
        "Accept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1", "replace")


class _Exchange:
    """One check's connection, driven straight from the event loop's readiness callbacks.

    No transport, stream or task per check: a non-blocking socket watched through
    ctx.poller (for reading, and for writing only while something could not be sent
    at once), whose events feed the parser and resolve `verdict`. The request is sent
    right after connect() when the handshake has already completed (always on
    loopback, often on a LAN), which saves a trip through the event loop.

    HTTPS runs TLS over memory BIOs (ssl.SSLObject) inside the same callbacks rather
    than on asyncio's SSL transport: the check then owns its socket outright, so a
    deadline or a failed handshake ends with one close(), with no graceful TLS
    shutdown left running in the background.
    """

    __slots__ = ("decide_on_status", "fd", "handshaken", "incoming", "out", "outgoing", "parser", "poller",
                  "reading", "request", "sock", "tls", "tls_error", "verdict", "writing")

    def __init__(self, poller: Poller, sock: socket.socket, request: bytes,
                 parser: ResponseParser, decide_on_status: bool, verdict: asyncio.Future[str | None],
                 tls: ssl.SSLContext | None = None, server_hostname: str | None = None,
                 session: object | None = None) -> None:
        self.poller = poller
        self.sock = sock
        self.fd = sock.fileno()
        self.request = request
        self.parser = parser
        self.decide_on_status = decide_on_status
        self.verdict = verdict
        self.reading = False
        self.writing = False
        self.out = b""  # bytes waiting to be sent
        self.handshaken = tls is None
        self.tls_error = False  # the TLS layer failed (not the HTTP exchange): its session is not kept
        if tls is not None:
            self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls: ssl.SSLObject | None = tls.wrap_bio(self.incoming, self.outgoing,
                                                         server_hostname=server_hostname)
            if session is not None:
                sslsession.offer(self.tls, session)
        else:
            self.tls = None

    def start(self, address: tuple[str, int]) -> None:
        try:  # noqa: SIM105 - a plain try is cheaper than contextlib.suppress on this hot path
            self.sock.connect(address)
        except (BlockingIOError, InterruptedError):
            pass  # handshake in progress: the first send finds out whether it is done
        if self.tls is None:
            self.out = self.request
        else:
            self._tls_handshake()
        self._flush()

    def _flush(self) -> None:
        """Send what is pending; watch for writability only while something is left."""
        if self.out:
            try:
                sent = self.sock.send(self.out)  # a failed connect reports its error here
            except (BlockingIOError, InterruptedError):
                sent = 0  # still connecting, or the send buffer is full
            except OSError as exc:
                self._settle(failures.of_exception(exc))
                return
            if sent:
                self.out = self.out[sent:]
        if self.verdict.done():
            return
        want_write = bool(self.out)
        if not self.reading or want_write != self.writing:
            self.reading = True
            self.writing = want_write
            self.poller.watch(self.fd, _READ_WRITE if want_write else _READ, self._on_event)

    def _on_event(self, events: int) -> None:
        if events & _WRITE and self.out:
            self._flush()
        if events & _READ_OR_ERROR and not self.verdict.done():
            self._receive()

    def _tls_handshake(self) -> None:
        """Advance the TLS handshake; once done, queue the encrypted request. Raises ssl.SSLError."""
        assert self.tls is not None
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        else:
            self.handshaken = True
            self.tls.write(self.request)
        self.out += self.outgoing.read()

    def _receive(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._settle(failures.of_exception(exc))
            return
        if self.tls is not None:
            if not data:
                self._settle(None if self.handshaken else "connection closed during the TLS handshake")
                if self.handshaken:
                    self.parser.feed_eof()
                return
            try:
                data, eof = self._tls_receive(data)
            except ssl.SSLError as exc:
                self.tls_error = True
                self._settle(failures.of_exception(exc))
                return
            if not self.handshaken:
                return
            if eof:
                if data:
                    self.parser.feed(data)
                data = b""
            elif not data:
                return
        parser = self.parser
        if not data:
            parser.feed_eof()
        else:
            if wants_more(parser.feed(data), parser, self.decide_on_status):
                return
        self._settle(None)

    def _tls_receive(self, data: bytes) -> tuple[bytes, bool]:
        """Decrypt `data`: (plaintext so far, whether the server closed the TLS session)."""
        assert self.tls is not None
        self.incoming.write(data)
        if not self.handshaken:
            self._tls_handshake()
            self._flush()
            if not self.handshaken:
                return b"", False
        chunks = []
        eof = False
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        pending = self.outgoing.read()  # e.g. a TLS 1.3 key update answer
        if pending:
            self.out += pending
            self._flush()
        return b"".join(chunks), eof

    def _settle(self, failure: str | None) -> None:
        if not self.verdict.done():
            self.verdict.set_result(failure)
            self._unwatch()  # no more events until the task closes the socket

    def _unwatch(self) -> None:
        if self.reading:
            self.reading = self.writing = False
            self.poller.forget(self.fd)

    def close(self) -> None:
        """Stop watching the socket and close it with an RST."""
        self._unwatch()
        self.sock.close()


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    """One HTTP(S) check of `spec`; the caller (CheckRunner) enforces the deadline."""
    started = asyncio.get_running_loop().time()
    try:
        pattern = compiled(spec.receive_re) if spec.receive_re is not None else None
    except BadPattern as exc:
        return Outcome(False, str(exc), 0.0)
    target, host = request_target(spec)
    try:
        request = build_request(spec)
    except ValueError as exc:
        return Outcome(False, str(exc), 0.0)
    parser = ResponseParser(head_only=spec.httpmethod.upper() == "HEAD", body_limit=ctx.body_limit)
    failure = await _exchange(spec, ctx, request, parser, pattern is None)
    if failure is not None:
        return Outcome(False, failure, asyncio.get_running_loop().time() - started)
    return await conclude(spec, ctx, parser, pattern, target, host, started)


async def conclude(spec: CheckSpec, ctx: CheckContext, parser: ResponseParser,
                   pattern: re.Pattern[str] | None, target: str, host: str, started: float) -> Outcome:
    """The verdict once the first response (to `target`, Host `host`) is in `parser`: redirects
    are followed first (a new connection each), as ldirectord's LWP does, while they stay on
    this real. `started` is the loop time the check began."""
    loop = asyncio.get_running_loop()
    seen = {target}
    hops = 0
    while parser.status in REDIRECT_STATUSES:  # rare
        if hops == MAX_REDIRECTS:
            return Outcome(False, f"HTTP {parser.status} after {MAX_REDIRECTS} redirects: too many "
                                  f"(ldirectord's limit)", loop.time() - started)
        hop = next_hop(parser.status, parser.location, scheme=spec.scheme, host=host,
                       target=target, address=spec.address, port=spec.port,
                       proxy=spec.service == "http_proxy")
        if isinstance(hop, Refused):
            return Outcome(False, hop.reason, loop.time() - started)
        if hop.target in seen:
            return Outcome(False, f"HTTP {parser.status} redirect loop: back to {hop.target}",
                           loop.time() - started)
        seen.add(hop.target)
        target = hop.target
        if spec.service == "http_proxy":
            host = target.split("://", 1)[1].split("/", 1)[0]
        try:
            request = build_request(spec, target, host)
        except ValueError as exc:
            return Outcome(False, str(exc), loop.time() - started)
        hops += 1
        parser = ResponseParser(head_only=spec.httpmethod.upper() == "HEAD", body_limit=ctx.body_limit)
        failure = await _exchange(spec, ctx, request, parser, pattern is None)
        if failure is not None:
            return Outcome(False, failure, loop.time() - started)
    outcome = judge_parsed(parser, pattern, loop.time() - started)
    if hops:
        return Outcome(outcome.ok, f"{outcome.detail} (after {hops} redirect{'s' if hops > 1 else ''})",
                       outcome.latency)
    return outcome


async def _exchange(spec: CheckSpec, ctx: CheckContext, request: bytes, parser: ResponseParser,
                    decide_on_status: bool) -> str | None:
    """One connection to the real: send `request`, feed `parser`; the failure detail, or None."""
    tls_context = server_hostname = session = session_key = None
    if spec.scheme == "https":  # resolved by the config layer, from service= or the URL
        policy = policy_of("https", spec.address, spec.virtualhost, spec.tls)
        try:
            tls_context = await ctx.tls.context(policy)
        except TlsSetupError as exc:
            return str(exc)
        server_hostname = policy.server_hostname
        session_key = (spec.address, spec.port, policy)  # resumed when possible (healthd.checks.tlsresume)
        session = ctx.sessions.offer(session_key, tls_context)
    verdict: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    sock = socket.socket(socket.AF_INET6 if spec.family == 6 else socket.AF_INET,
                         socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    exchange = None
    try:
        reset_on_close(sock)
        exchange = _Exchange(ctx.poller, sock, request, parser, decide_on_status, verdict,
                             tls_context, server_hostname, session)
        exchange.start((spec.address, spec.port))
        return await verdict
    except OSError as exc:  # ssl.SSLError is an OSError
        if exchange is not None and isinstance(exc, ssl.SSLError):
            exchange.tls_error = True
        return failures.of_exception(exc)
    finally:
        if exchange is not None:
            if session_key is not None:  # the response was read: a TLS 1.3 ticket is in by now
                done = exchange.handshaken and not exchange.tls_error
                ctx.sessions.settle(session_key, tls_context, exchange.tls if done else None)  # type: ignore[arg-type]
            exchange.close()
        else:
            sock.close()


def judge_parsed(parser: ResponseParser, pattern: re.Pattern[str] | None, latency: float) -> Outcome:
    """The verdict on the final response as `parser` read it."""
    if parser.status == 0:
        return Outcome(False, parser.error or "no HTTP response", latency)
    return judge(parser.status, parser.reason, parser.error if parser.state is ParseState.ERROR else "",
                 parser.body, parser.truncated, pattern, latency)


def judge(status: int, reason: str, error: str, body: bytes | bytearray, truncated: bool,
          pattern: re.Pattern[str] | None, latency: float) -> Outcome:
    """The verdict on a final response: its status, the `error` that cut its body short (""
    if none), the body read (the first `ctx.body_limit` bytes if `truncated`)."""
    if not 200 <= status < 300:
        return Outcome(False, f"HTTP {status} {reason}".rstrip(), latency)
    if pattern is None:
        return Outcome(True, f"HTTP {status}", latency)
    if error:
        return Outcome(False, f"HTTP {status}, then {error}", latency)
    if pattern.search(decode(bytes(body))) is None:
        read = f"first {len(body)} bytes of body" if truncated else "body"
        return Outcome(False, f"HTTP {status}, {read} did not match receive", latency)
    return Outcome(True, _MATCHED.get(status) or f"HTTP {status}, body matched", latency)


_MATCHED = {200: "HTTP 200, body matched"}  # the usual verdict's words, made once
