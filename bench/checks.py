"""Micro-benchmark of one check's CPU cost: healthd's lean HTTP check vs aiohttp, against nginx on loopback.

    python -m bench checks [--checks N] [--rounds R] [--concurrency C] [--addresses A]

Each row runs N checks (a fresh connection each, `Connection: close`) with C in
flight, spread over A loopback addresses served by one nginx worker, R times,
interleaving the clients so that a busy neighbour on the machine hurts them alike;
it prints the median CPU time of this process per check (user + sys, os.times) and
the achieved rate. nginx is another process: its user time is not counted, but on
loopback the kernel work of both ends of a connection is done in the sender's
context, so part of nginx's TCP work shows up in our 'sys'. The aiohttp / lean
ratio is what decided healthd.checks.http. Every measurement stops after N checks
or 120 s, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from bench.checks_nginx import loopback_addresses, nginx
from healthd.checks.context import CheckContext
from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec, CheckType, Outcome
from healthd.vocab import ServiceProtocol

PORT = 18987  # HTTP; HTTPS on PORT + 1
WALL_LIMIT = 120.0

Run = Callable[[CheckSpec], Awaitable[Outcome]]


def _spec(address: str, **kw: object) -> CheckSpec:
    base: dict[str, object] = dict(type=CheckType.NEGOTIATE, service="http", protocol=ServiceProtocol.TCP,
                                   family=4,
                                   address=address, port=PORT, scheme="http", negotiatetimeout=3.0,
                                   checktimeout=3.0)
    base.update(kw)
    return CheckSpec(**base)  # type: ignore[arg-type]


class AiohttpCheck:
    """The same check written the recommended aiohttp way (platform.md), for comparison only."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=True, ssl=self.ctx.tls, use_dns_cache=False)
        self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                             auto_decompress=False)

    async def close(self) -> None:
        if self.session:
            await self.session.close()

    async def run(self, spec: CheckSpec) -> Outcome:
        assert self.session is not None
        started = time.monotonic()
        url = f"{spec.scheme}://{spec.address}:{spec.port}{spec.request}"
        try:
            async with self.session.request(
                spec.httpmethod, url, allow_redirects=False,
                headers={"Host": spec.virtualhost or spec.address},
                server_hostname=spec.virtualhost if spec.scheme == "https" else None,
                timeout=aiohttp.ClientTimeout(total=spec.deadline),
            ) as resp:
                body = await resp.content.read(self.ctx.body_limit)
                ok = 200 <= resp.status < 300
                if ok and spec.receive_re is not None:
                    ok = re.search(spec.receive_re, body.decode("utf-8", "replace")) is not None
                return Outcome(ok, f"HTTP {resp.status}", time.monotonic() - started)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome(False, str(exc), time.monotonic() - started)


@dataclass
class Row:
    variant: str
    client: str
    user_us: list[float] = field(default_factory=list)
    sys_us: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    failed: int = 0

    @property
    def total_us(self) -> float:
        return statistics.median(u + s for u, s in zip(self.user_us, self.sys_us, strict=True))


async def _measure(run: Run, specs: list[CheckSpec], total: int, concurrency: int,
                   row: Row | None = None) -> None:
    done = failed = next_index = 0
    stop_at = time.monotonic() + WALL_LIMIT

    async def worker() -> None:
        nonlocal done, failed, next_index
        while next_index < total and time.monotonic() < stop_at:
            spec = specs[next_index % len(specs)]
            next_index += 1
            outcome = await run(spec)
            done += 1
            failed += not outcome.ok

    gc.collect()
    t0, wall0 = os.times(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    t1, wall = os.times(), time.perf_counter() - wall0
    if row is not None:
        n = max(done, 1)
        row.user_us.append((t1.user - t0.user) / n * 1e6)
        row.sys_us.append((t1.system - t0.system) / n * 1e6)
        row.rate.append(done / wall)
        row.failed += failed


def _tls_material() -> tuple[bytes, bytes] | None:
    try:
        import trustme
    except ImportError:
        return None
    cert = trustme.CA().issue_cert("bench.example.org")
    return b"".join(b.bytes() for b in cert.cert_chain_pems), cert.private_key_pem.bytes()


async def _bench(args: argparse.Namespace, with_tls: bool) -> list[Row]:
    addresses = loopback_addresses(args.addresses)
    runner = CheckRunner(CheckContext())
    await runner.start()
    other = AiohttpCheck(runner.ctx)
    await other.start()
    clients: dict[str, Run] = {"healthd lean": runner.run, "aiohttp": other.run}
    # (variant, clients, specs, checks, in flight)
    plan: list[tuple[str, dict[str, Run], list[CheckSpec], int, int]] = [
        ("CheckRunner, service none (no I/O)", {"healthd": runner.run},
         [_spec(a, service="none") for a in addresses], args.checks * 5, args.concurrency),
        ("TCP connect check", {"healthd": runner.run},
         [_spec(a, type=CheckType.CONNECT, service="none") for a in addresses], args.checks,
         args.concurrency),
        ("GET, status only", clients, [_spec(a) for a in addresses], args.checks, args.concurrency),
        ("GET, body matched by receive", clients, [_spec(a, receive_re="bench: ok") for a in addresses],
         args.checks, args.concurrency),
    ]
    if with_tls:
        # a handshake costs milliseconds of CPU on both ends: fewer in flight, or they hit the timeout
        plan.append(("HTTPS GET (full handshake)", clients,
                     [_spec(a, port=PORT + 1, scheme="https", service="https",
                            virtualhost="bench.example.org") for a in addresses], max(1, args.checks // 5),
                     min(args.concurrency, 20)))
    rows = {(variant, name): Row(variant, name) for variant, runs, *_ in plan for name in runs}
    try:
        for run in clients.values():  # warm up: imports, first connections, caches
            await _measure(run, plan[2][2], 500, 50)
        for _ in range(args.rounds):
            for variant, runs, specs, count, in_flight in plan:
                for name, run in runs.items():
                    await _measure(run, specs, count, in_flight, rows[(variant, name)])
    finally:
        await other.close()
        await runner.close()
    return list(rows.values())


def _report(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"\nchecks per row: {args.checks} (HTTPS: {max(1, args.checks // 5)}), {args.rounds} rounds "
          f"(median shown), {args.concurrency} in flight (HTTPS: {min(args.concurrency, 20)}), "
          f"{args.addresses} loopback addresses, nginx with 1 worker")
    print(f"{'variant':36} {'client':13} {'us CPU/check':>12} {'user':>7} {'sys':>7} "
          f"{'checks/s':>9} {'1-core max/s':>12} {'failed':>6}")
    for r in rows:
        total = r.total_us
        print(f"{r.variant:36} {r.client:13} {total:12.1f} {statistics.median(r.user_us):7.1f} "
              f"{statistics.median(r.sys_us):7.1f} {statistics.median(r.rate):9.0f} "
              f"{1e6 / total if total else 0:12.0f} {r.failed:6d}")
    by = {(r.variant, r.client): r.total_us for r in rows}
    for variant in dict.fromkeys(r.variant for r in rows):
        lean, other = by.get((variant, "healthd lean")), by.get((variant, "aiohttp"))
        if lean and other:
            print(f"aiohttp / lean CPU per check, {variant}: {other / lean:.2f}x")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"max RSS of this process: {rss:.0f} MiB; load average now: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (figures are noisy on a busy machine)")
    if any(r.failed for r in rows):
        print("warning: some checks failed; the figures include failures", file=sys.stderr)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench checks", description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=10000, help="checks per row and round (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is shown (default 3)")
    parser.add_argument("--concurrency", type=int, default=200, help="checks in flight (default 200)")
    parser.add_argument("--addresses", type=int, default=200, help="loopback addresses (default 200)")
    args = parser.parse_args(argv)
    if min(args.checks, args.rounds, args.concurrency, args.addresses) < 1:
        parser.error("--checks, --rounds, --concurrency and --addresses must be positive")
    if args.addresses > 5000:
        parser.error("--addresses: at most 5000 (one nginx listening socket each)")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tls = _tls_material()
    if tls is None:
        print("trustme is not installed: the HTTPS row is skipped", file=sys.stderr)
    try:
        with nginx(loopback_addresses(args.addresses), PORT, tls=tls):
            rows = asyncio.run(_bench(args, tls is not None))
    except (RuntimeError, OSError) as exc:
        print(f"bench checks: {exc}", file=sys.stderr)
        return 1
    _report(rows, args)
    return 0
