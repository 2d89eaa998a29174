"""Negotiate check for service=radius: an Access-Request with login, passwd and secret (RFC 2865, PAP).

What counts as up: any reply whose Response Authenticator proves it was signed
with our shared `secret`: Access-Accept, Access-Reject or Access-Challenge.
That is ldirectord's behaviour (it is up on any answer, a reject included)
and it answers the question a load balancer asks: the server is alive, knows
this client and processes requests. A reply signed with another secret, or
none at all, is down. To require a particular answer, set `receive` to a
pattern of the reply's name, e.g. receive="Access-Accept".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import struct

from healthd.checks.context import CheckContext
from healthd.checks.dialog import CheckFailed, bounded
from healthd.checks.spec import CheckSpec, Outcome

ACCESS_REQUEST = 1
REPLY_NAMES = {2: "Access-Accept", 3: "Access-Reject", 11: "Access-Challenge"}
USER_NAME, USER_PASSWORD, NAS_IDENTIFIER, MESSAGE_AUTHENTICATOR = 1, 2, 32, 80
NAS_ID = b"healthd"
RESENDS = 2  # UDP may lose a datagram: the same request is sent again, at most this many times

# ---- pure protocol logic -------------------------------------------------


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password as RFC 2865 §5.2 hides it: 16-byte blocks XORed with a chained MD5."""
    if len(password) > 128:
        raise CheckFailed("passwd is longer than RADIUS allows (128 bytes)")
    # Zero padding to whole blocks; an empty password is still one block.
    padded = password.ljust(max(16, -(-len(password) // 16) * 16), b"\0")
    hidden, previous = b"", authenticator
    for i in range(0, len(padded), 16):
        key = hashlib.md5(secret + previous).digest()
        block = bytes(a ^ b for a, b in zip(padded[i:i + 16], key, strict=True))
        hidden += block
        previous = block
    return hidden


def _attribute(kind: int, value: bytes) -> bytes:
    if not 0 < len(value) <= 253:
        raise CheckFailed(f"RADIUS attribute {kind} must be 1 to 253 bytes long")
    return bytes((kind, len(value) + 2)) + value


def build_access_request(identifier: int, authenticator: bytes, user: bytes, password: bytes,
                         secret: bytes) -> bytes:
    """An Access-Request signed with Message-Authenticator (first, as RFC 3579 and BlastRADIUS advise)."""
    attributes = (
        _attribute(MESSAGE_AUTHENTICATOR, b"\0" * 16)
        + _attribute(USER_NAME, user)
        + _attribute(USER_PASSWORD, hide_password(password, secret, authenticator))
        + _attribute(NAS_IDENTIFIER, NAS_ID)
    )
    header = struct.pack("!BBH", ACCESS_REQUEST, identifier, 20 + len(attributes))
    unsigned = header + authenticator + attributes
    signature = hmac.new(secret, unsigned, hashlib.md5).digest()
    return header + authenticator + _attribute(MESSAGE_AUTHENTICATOR, signature) + attributes[18:]


def reply_code(reply: bytes, identifier: int, authenticator: bytes, secret: bytes) -> int | None:
    """The code of a reply to our request, None if it answers some other request; CheckFailed if forged."""
    if len(reply) < 20:
        raise CheckFailed("RADIUS reply too short")
    code, reply_id, length = struct.unpack("!BBH", reply[:4])
    if reply_id != identifier:
        return None
    if length < 20 or length > len(reply):
        raise CheckFailed("RADIUS reply has a bad length")
    reply = reply[:length]
    expected = hashlib.md5(reply[:4] + authenticator + reply[20:] + secret).digest()
    if not hmac.compare_digest(expected, reply[4:20]):
        raise CheckFailed("RADIUS reply is not signed with our secret (wrong secret?)")
    return code


def judge(code: int, receive_re: str | None) -> str:
    name = REPLY_NAMES.get(code)
    if name is None:
        raise CheckFailed(f"RADIUS replied with code {code}, not an answer to Access-Request")
    if receive_re is not None:
        try:
            matched = re.search(receive_re, name) is not None
        except re.error:
            matched = False
        if not matched:
            raise CheckFailed(f"RADIUS {name} does not match receive")
    return f"RADIUS {name}"


# ---- the exchange --------------------------------------------------------


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)


async def _radius(spec: CheckSpec) -> str:
    if not spec.secret:
        raise CheckFailed("radius checks need secret to be set")
    secret = spec.secret.encode()
    identifier, authenticator = secrets.randbelow(256), secrets.token_bytes(16)
    packet = build_access_request(identifier, authenticator, spec.login.encode() or b"healthd",
                                  spec.passwd.encode(), secret)
    loop = asyncio.get_running_loop()
    transport, replies = await loop.create_datagram_endpoint(_Replies, remote_addr=(spec.address, spec.port))
    try:
        interval = spec.deadline / (RESENDS + 1)
        for _ in range(RESENDS + 1):
            transport.sendto(packet)
            try:
                async with asyncio.timeout(interval):
                    while True:
                        item = await replies.queue.get()
                        if isinstance(item, Exception):
                            raise item
                        code = reply_code(item, identifier, authenticator, secret)
                        if code is not None:
                            return judge(code, spec.receive_re)
            except TimeoutError:
                continue
        raise TimeoutError
    finally:
        transport.close()


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    """Negotiate check for service=radius; never raises for a server's behaviour."""
    return await bounded(spec, lambda: _radius(spec))
