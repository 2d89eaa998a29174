"""The connect check: up when a TCP connection to the real's check port opens (UDP virtuals: ping).

As ldirectord does, a UDP virtual has no connection to open, so its connect check
is an ICMP echo. The connection is closed with an RST (SO_LINGER 0) so that frequent
checks leave no TIME_WAIT sockets behind.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket

from healthd.checks import failures, ping
from healthd.checks.context import CheckContext
from healthd.checks.sockets import reset_on_close
from healthd.checks.spec import CheckSpec, Outcome
from healthd.vocab import ServiceProtocol


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    if spec.protocol == ServiceProtocol.UDP:
        return await ping.check(spec, ctx)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sock = socket.socket(socket.AF_INET6 if spec.family == 6 else socket.AF_INET,
                         socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    fd = sock.fileno()
    watched = False
    try:
        reset_on_close(sock)
        try:
            sock.connect((spec.address, spec.port))
        except (BlockingIOError, InterruptedError):
            # in progress: writable once it is set up or has failed (ctx.poller, as the HTTP check)
            done: asyncio.Future[None] = loop.create_future()
            ctx.poller.watch(fd, select.EPOLLOUT, lambda events: done.done() or done.set_result(None))
            watched = True
            await done
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err)) from None
    except ConnectionRefusedError:
        return Outcome(False, failures.REFUSED, loop.time() - started)
    except OSError as exc:
        return Outcome(False, failures.connection_failed(exc), loop.time() - started)
    finally:
        if watched:
            ctx.poller.forget(fd)
        sock.close()
    return Outcome(True, "TCP connection opened", loop.time() - started)
