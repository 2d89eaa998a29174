"""`python -m tests.integration.web.attack PORT LORIS SCRAPES`: hostile and greedy clients of healthd --http.

LORIS slow-loris clients trickle header bytes (reconnecting whenever cut off) while
one client fetches /metrics and /status.json SCRAPES times in a row. It runs in a
process of its own at the lowest CPU priority: an attacker's CPU is not the load
balancer's, and on a shared test machine the attacker must not win the CPU from
healthd merely by being one more busy process. Prints one JSON line of results.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time


async def http_get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """One HTTP/1.0 GET on a fresh connection: (status, body)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionResetError("closed without an answer")
    return int(head.split()[1]), body


async def get_with_retry(host: str, port: int, path: str, tries: int = 3) -> tuple[bytes, int]:
    """The body of a 200 answer and how many attempts were cut off before it."""
    for attempt in range(tries):
        try:
            status, body = await http_get(host, port, path)
        except (ConnectionError, asyncio.IncompleteReadError):
            continue
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}")
        return body, attempt
    raise RuntimeError(f"GET {path} failed {tries} times")


async def slow_loris(host: str, port: int, stop: asyncio.Event, cut: list[int]) -> None:
    """Send a request's headers one byte every 0.5 s; reconnect when cut off, until `stop`."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while not stop.is_set():
                writer.write(b"a")
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), 0.5) == b"":
                        raise ConnectionResetError
        except (ConnectionError, OSError):
            cut[0] += 1
            await asyncio.sleep(0.2)
        finally:
            writer.close()


async def attack(port: int, loris_count: int, scrapes: int) -> dict[str, float]:
    stop = asyncio.Event()
    cut = [0]
    loris = [asyncio.create_task(slow_loris("127.0.0.1", port, stop, cut)) for _ in range(loris_count)]
    await asyncio.sleep(1.0)  # the slow clients take every connection slot they can get
    started = time.monotonic()
    retries = 0
    for i in range(scrapes):
        _, cutoff = await get_with_retry("127.0.0.1", port, "/metrics" if i % 2 else "/status.json")
        retries += cutoff
    seconds = time.monotonic() - started
    stop.set()
    await asyncio.gather(*loris)
    return {"retries": retries, "cut": cut[0], "seconds": seconds}


if __name__ == "__main__":
    os.nice(19)
    print(json.dumps(asyncio.run(attack(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))), flush=True)
