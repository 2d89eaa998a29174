"""Negotiate check for service=sip: send OPTIONS over the virtual's protocol, up on a final 200 reply.

As in ldirectord, the request URI is `sip:<login>`; healthd falls back to
`sip:<real address>:<port>` when login is empty (ldirectord then sends the
invalid "sip:"). Provisional 1xx replies are skipped, replies to some other
request (another Call-ID) are ignored, and any 2xx-reason text is accepted
with code 200 (ldirectord insists on the words "200 OK").
"""

from __future__ import annotations

import asyncio
import secrets

from healthd import vocab
from healthd.checks.context import CheckContext
from healthd.checks.dialog import CheckFailed, bounded, close_stream, excerpt, open_stream
from healthd.checks.spec import CheckSpec, Outcome
from healthd.vocab import ServiceProtocol

MAX_MESSAGES = 20  # provisional or stray replies read before giving up
HEADER_LIMIT = 16 * 1024

# ---- pure protocol logic -------------------------------------------------


def request_uri(spec: CheckSpec) -> str:
    if spec.login:
        return spec.login if spec.login.startswith(("sip:", "sips:")) else f"sip:{spec.login}"
    return f"sip:{spec.target}"


def build_options(uri: str, transport: str, local: str, call_id: str, branch: str, tag: str) -> bytes:
    """An OPTIONS request; `local` is our host:port as the server sees it (Via sent-by)."""
    lines = [
        f"OPTIONS {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {local};branch=z9hG4bK{branch};rport",
        "Max-Forwards: 70",
        f"To: <{uri}>",
        f"From: <{uri}>;tag={tag}",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:healthd@{local}>",
        "Accept: application/sdp",
        "User-Agent: healthd",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_response(message: bytes) -> tuple[int, str, dict[str, str]]:
    """(status code, reason, headers by lower-case name; compact forms expanded) of a SIP reply."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit() or len(parts[1]) != 3:
        raise CheckFailed(f"not a SIP reply: {excerpt(lines[0])!r}")
    compact = {"i": "call-id", "l": "content-length", "v": "via", "f": "from", "t": "to"}
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers.setdefault(compact.get(key, key), value.strip())
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def judge(code: int, reason: str) -> str:
    if code == 200:
        return f"SIP OPTIONS answered {code} {excerpt(reason)}".rstrip()
    raise CheckFailed(f"SIP OPTIONS answered {code} {excerpt(reason)}".rstrip())


def _host_port(sockname: tuple[object, ...]) -> str:
    return vocab.host_port(str(sockname[0]), str(sockname[1]))


# ---- transports ----------------------------------------------------------


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable arrives here: the server is not listening.
        self.queue.put_nowait(exc)


async def _over_udp(spec: CheckSpec) -> tuple[int, str]:
    loop = asyncio.get_running_loop()
    transport, replies = await loop.create_datagram_endpoint(_Replies, remote_addr=(spec.address, spec.port))
    try:
        call_id = secrets.token_hex(12)
        local = _host_port(transport.get_extra_info("sockname"))
        transport.sendto(build_options(request_uri(spec), "UDP", local, call_id, secrets.token_hex(8),
                                       secrets.token_hex(4)))
        for _ in range(MAX_MESSAGES):
            item = await replies.queue.get()
            if isinstance(item, Exception):
                raise item
            code, reason, headers = parse_response(item)
            if headers.get("call-id") != call_id or code < 200:
                continue
            return code, reason
        raise CheckFailed("SIP server sent only provisional or stray replies")
    finally:
        transport.close()


async def _over_tcp(spec: CheckSpec, ctx: CheckContext) -> tuple[int, str]:
    reader, writer = await open_stream(spec, ctx)
    try:
        call_id = secrets.token_hex(12)
        local = _host_port(writer.get_extra_info("sockname"))
        writer.write(build_options(request_uri(spec), "TCP", local, call_id, secrets.token_hex(8),
                                   secrets.token_hex(4)))
        for _ in range(MAX_MESSAGES):
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > HEADER_LIMIT:
                raise CheckFailed("SIP reply headers too long")
            code, reason, headers = parse_response(head)
            length = headers.get("content-length", "0")
            if length.isdigit() and int(length) > 0:
                await reader.readexactly(min(int(length), HEADER_LIMIT))
            if code >= 200:
                return code, reason
        raise CheckFailed("SIP server sent only provisional replies")
    finally:
        close_stream(writer)


async def _sip(spec: CheckSpec, ctx: CheckContext) -> str:
    if spec.protocol == ServiceProtocol.TCP:
        code, reason = await _over_tcp(spec, ctx)
    else:
        code, reason = await _over_udp(spec)
    return judge(code, reason)


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    """Negotiate check for service=sip; never raises for a server's behaviour."""
    return await bounded(spec, lambda: _sip(spec, ctx))
