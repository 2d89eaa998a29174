"""Micro-benchmark of one HTTP check's CPU cost: healthd's lean check vs aiohttp, against nginx on loopback.

    python -m bench checks [--checks N] [--concurrency C] [--addresses A]

For each client it runs N checks (a fresh connection each, `Connection: close`) with
C in flight, spread over A loopback addresses served by one nginx worker, and
prints the checking process's CPU time per check (user+sys, from
time.process_time) and the achieved rate. nginx runs in its own process, so its
CPU is not counted. The ratio aiohttp/lean is what decided healthd.checks.http.
Bounded: every run stops after N checks or 120 s, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp

from bench.checks_nginx import loopback_addresses, nginx
from healthd.checks.context import CheckContext
from healthd.checks.registry import CheckRunner
from healthd.checks.spec import CheckSpec, CheckType, Outcome

PORT = 18987
WALL_LIMIT = 120.0


def _spec(address: str, **kw: object) -> CheckSpec:
    base: dict[str, object] = dict(type=CheckType.NEGOTIATE, service="http", protocol="tcp", family=4,
                                   address=address, port=PORT, scheme="http", negotiatetimeout=3.0,
                                   checktimeout=3.0)
    base.update(kw)
    return CheckSpec(**base)  # type: ignore[arg-type]


class AiohttpCheck:
    """The same check written the recommended aiohttp way (platform.md), for comparison only."""

    def __init__(self, body_limit: int) -> None:
        self.body_limit = body_limit
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=True, ssl=False, use_dns_cache=False)
        self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                             auto_decompress=False)

    async def close(self) -> None:
        if self.session:
            await self.session.close()

    async def run(self, spec: CheckSpec) -> Outcome:
        assert self.session is not None
        started = time.monotonic()
        url = f"http://{spec.address}:{spec.port}{spec.request}"
        try:
            async with self.session.request(
                spec.httpmethod, url, allow_redirects=False,
                headers={"Host": spec.virtualhost or spec.address},
                timeout=aiohttp.ClientTimeout(total=spec.deadline),
            ) as resp:
                body = await resp.content.read(self.body_limit)
                ok = 200 <= resp.status < 300
                if ok and spec.receive_re is not None:
                    import re
                    ok = re.search(spec.receive_re, body.decode("utf-8", "replace")) is not None
                return Outcome(ok, f"HTTP {resp.status}", time.monotonic() - started)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome(False, str(exc), time.monotonic() - started)


async def _measure(run: Callable[[CheckSpec], Awaitable[Outcome]], specs: list[CheckSpec],
                   total: int, concurrency: int) -> tuple[float, float, float, int, int]:
    """(user cpu seconds, system cpu seconds, wall seconds, checks done, checks failed)."""
    done = failed = 0
    stop_at = time.monotonic() + WALL_LIMIT
    next_index = 0

    async def worker() -> None:
        nonlocal done, failed, next_index
        while next_index < total and time.monotonic() < stop_at:
            spec = specs[next_index % len(specs)]
            next_index += 1
            outcome = await run(spec)
            done += 1
            if not outcome.ok:
                failed += 1

    gc.collect()
    t0, wall0 = os.times(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    t1 = os.times()
    return t1.user - t0.user, t1.system - t0.system, time.perf_counter() - wall0, done, failed


async def _bench(args: argparse.Namespace) -> int:
    addresses = loopback_addresses(args.addresses)
    variants: dict[str, list[CheckSpec]] = {
        "GET, status only": [_spec(a) for a in addresses],
        "GET, body matched by receive": [_spec(a, receive_re="bench: ok") for a in addresses],
    }
    runner = CheckRunner(CheckContext())
    await runner.start()
    other = AiohttpCheck(runner.ctx.body_limit)
    await other.start()
    clients: dict[str, Callable[[CheckSpec], Awaitable[Outcome]]] = {
        "healthd lean": runner.run, "aiohttp": other.run,
    }
    connect_specs = [_spec(a, type=CheckType.CONNECT, service="none") for a in addresses]
    rows: list[tuple[str, str, float, float, float, int, int]] = []
    try:
        # warm up both (imports, first connections) outside the measurement
        for run in clients.values():
            await _measure(run, variants["GET, status only"], 500, 50)
        rows.append(("TCP connect only (floor)", "healthd connect",
                     *await _measure(runner.run, connect_specs, args.checks, args.concurrency)))
        for variant, specs in variants.items():
            for name, run in clients.items():
                rows.append((variant, name, *await _measure(run, specs, args.checks, args.concurrency)))
    finally:
        await other.close()
        await runner.close()

    print(f"\n{args.checks} checks per row, {args.concurrency} in flight, {len(addresses)} loopback "
          f"addresses, nginx 1 worker; CPU of this process only")
    print("(on loopback the kernel's work for both ends of each connection is charged to the sender,")
    print(" so 'sys' includes much of nginx's TCP work; 'user' is the Python client's own cost)")
    print(f"{'variant':30} {'client':16} {'us CPU/check':>12} {'user':>7} {'sys':>7} "
          f"{'checks/s':>9} {'failed':>6}")
    per: dict[tuple[str, str], float] = {}
    for variant, name, user, system, wall, done, failed in rows:
        n = max(done, 1)
        us = (user + system) / n * 1e6
        per[(variant, name)] = us
        print(f"{variant:30} {name:16} {us:12.1f} {user / n * 1e6:7.1f} {system / n * 1e6:7.1f} "
              f"{done / wall:9.0f} {failed:6d}")
    for variant in variants:
        ratio = per[(variant, "aiohttp")] / per[(variant, "healthd lean")]
        print(f"aiohttp / lean CPU ratio, {variant}: {ratio:.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"max RSS of this process: {rss:.0f} MiB")
    bad = sum(r[6] for r in rows)
    if bad:
        print(f"warning: {bad} checks failed; the figures include failures", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench checks", description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=20000, help="checks per measurement (default 20000)")
    parser.add_argument("--concurrency", type=int, default=200, help="checks in flight (default 200)")
    parser.add_argument("--addresses", type=int, default=200, help="loopback addresses (default 200)")
    args = parser.parse_args(argv)
    if args.checks < 1 or args.concurrency < 1 or args.addresses < 1:
        parser.error("--checks, --concurrency and --addresses must be positive")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with nginx(loopback_addresses(args.addresses), PORT):
        return asyncio.run(_bench(args))
