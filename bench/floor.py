"""The floor of a plain HTTP check in Python without asyncio: one select.epoll loop, nothing else.

The same work as bench/floor.c and as healthd's check: a fresh non-blocking socket,
SO_LINGER 0 (close sends an RST), connect, send the request, one read, status and
"ok" looked for, close. `in_flight` checks at once, round robin over the addresses.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from dataclasses import dataclass

LINGER_RST = struct.pack("ii", 1, 0)


@dataclass
class FloorResult:
    checks: int
    ok: int
    user_s: float
    sys_s: float
    wall_s: float

    @property
    def us_per_check(self) -> float:
        return (self.user_s + self.sys_s) / max(self.checks, 1) * 1e6


def python_floor(addresses: list[str], port: int, path: str, total: int, in_flight: int,
                 wall_limit: float = 60.0) -> FloorResult:
    request = (f"GET {path} HTTP/1.1\r\nHost: floor\r\nUser-Agent: floor\r\nAccept: */*\r\n"
               "Connection: close\r\n\r\n").encode()
    targets = [(a, port) for a in addresses]
    n_targets = len(targets)
    ep = select.epoll()
    socks: dict[int, socket.socket] = {}
    pending: set[int] = set()  # connected but not sent yet
    started = done = ok = 0
    nonblock = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
    IN, OUT = select.EPOLLIN, select.EPOLLOUT

    def start() -> None:
        nonlocal started
        s = socket.socket(socket.AF_INET, nonblock)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        s.connect_ex(targets[started % n_targets])
        started += 1
        fd = s.fileno()
        socks[fd] = s
        try:
            s.send(request)
            ep.register(fd, IN)
        except BlockingIOError:
            pending.add(fd)
            ep.register(fd, IN | OUT)

    t0, wall0 = os.times(), time.monotonic()
    try:
        for _ in range(min(in_flight, total)):
            start()
        while done < total and time.monotonic() - wall0 < wall_limit:
            for fd, events in ep.poll(1.0, 256):
                s = socks[fd]
                if fd in pending:
                    if not events & OUT:
                        continue
                    pending.discard(fd)
                    try:
                        s.send(request)
                    except OSError:
                        events = 0
                    else:
                        ep.modify(fd, IN)
                        continue
                try:
                    data = s.recv(4096) if events else b""
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 200") and data.find(b"ok", data.find(b"\r\n\r\n")) > 0:
                    ok += 1
                del socks[fd]
                s.close()  # the kernel drops it from the epoll set
                done += 1
                if started < total:
                    start()
    finally:
        for s in socks.values():
            s.close()
        ep.close()
    t1, wall = os.times(), time.monotonic() - wall0
    return FloorResult(done, ok, t1.user - t0.user, t1.system - t0.system, wall)
