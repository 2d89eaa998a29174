"""The connect check: up when a TCP connection to the real's check port opens (UDP virtuals: ping).

As ldirectord does, a UDP virtual has no connection to open, so its connect check
is an ICMP echo. The connection is closed with an RST (SO_LINGER 0) so that frequent
checks leave no TIME_WAIT sockets behind.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from healthd.checks import ping
from healthd.checks.context import CheckContext
from healthd.checks.spec import CheckSpec, Outcome

_LINGER_RST = struct.pack("ii", 1, 0)


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    if spec.protocol == "udp":
        return await ping.check(spec, ctx)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sock = socket.socket(socket.AF_INET6 if spec.family == 6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        await loop.sock_connect(sock, (spec.address, spec.port))
    except ConnectionRefusedError:
        return Outcome(False, "connection refused", loop.time() - started)
    except OSError as exc:
        return Outcome(False, f"connect failed: {(exc.strerror or str(exc)).lower()}", loop.time() - started)
    finally:
        sock.close()
    return Outcome(True, "TCP connection opened", loop.time() - started)
