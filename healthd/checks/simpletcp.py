"""The simpletcp negotiate check: send `request`, half-close, up when a reply line matches `receive`.

`request` is sent with every `\\n` written in the config turned into a newline; no
newline is added. Lines are matched one at a time (search, not match), at most
ctx.body_limit bytes are read, and with no receive pattern the first line received
is enough. A server that closes without a matching line is down.
"""

from __future__ import annotations

import asyncio
import socket

from healthd.checks import failures
from healthd.checks.context import CheckContext
from healthd.checks.receive import BadPattern, compiled, decode
from healthd.checks.sockets import reset_on_close
from healthd.checks.spec import CheckSpec, Outcome


def request_bytes(request: str) -> bytes:
    """The bytes to send: the config's `\\n` escapes become newlines."""
    return request.replace("\\n", "\n").encode("utf-8")


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        pattern = compiled(spec.receive_re) if spec.receive_re is not None else None
    except BadPattern as exc:
        return Outcome(False, str(exc), 0.0)
    sock = socket.socket(socket.AF_INET6 if spec.family == 6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        reset_on_close(sock)
        await loop.sock_connect(sock, (spec.address, spec.port))
        payload = request_bytes(spec.request)
        if payload:
            await loop.sock_sendall(sock, payload)
        sock.shutdown(socket.SHUT_WR)
        pending = b""
        total = 0
        while total < ctx.body_limit:
            data = await loop.sock_recv(sock, min(16384, ctx.body_limit - total))
            total += len(data)
            lines = (pending + data).split(b"\n")
            # at EOF the unterminated last line counts too; otherwise it waits for more bytes
            pending = b"" if not data else lines.pop()
            for line in lines:
                if not line:
                    continue
                if pattern is None or pattern.search(decode(line.rstrip(b"\r"))) is not None:
                    return Outcome(True, "reply line matched" if pattern else "reply received",
                                   loop.time() - started)
            if not data:
                return Outcome(False, "connection closed without a matching line" if total
                               else "connection closed without a reply", loop.time() - started)
        if pending and (pattern is None or pattern.search(decode(pending)) is not None):
            return Outcome(True, "reply line matched", loop.time() - started)
        return Outcome(False, f"no line matched in the first {total} bytes", loop.time() - started)
    except ConnectionRefusedError:
        return Outcome(False, failures.REFUSED, loop.time() - started)
    except ConnectionResetError:
        return Outcome(False, failures.RESET, loop.time() - started)
    except OSError as exc:
        return Outcome(False, failures.connection_failed(exc), loop.time() - started)
    finally:
        sock.close()
