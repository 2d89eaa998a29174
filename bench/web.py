"""The cost of a scrape: /metrics and /status.json at 1,000 and 10,000 reals, beside the checks it reports on.

    python -m bench web [--sizes 1000,10000] [--scrapes 5] [--interval 1]

For each N: an engine checks N reals (instant verdicts, no I/O: the cost measured is
the scrape's, not the checks') every `interval` s on the in-memory table. Then, while
the checks go on, it builds each document `scrapes` times through healthd's web server
(no cache: every request builds) and reports per scrape:
  - CPU (this process, user+sys) and wall time of /metrics and of /status.json,
  - the longest the event loop was held while it was built: the most CPU time the loop's
    thread spent between two turns of a 1 ms probe timer (CPU, not wall clock, so that a
    machine busy with other work does not count as healthd's stall),
  - the size of the answer,
and, for comparison, the same document built the pre-slicing way (engine.snapshot(),
dataclasses.asdict, one json.dumps): what `healthd status --json` cost before.
Bounded: each size runs its checks for about (1 + 2 * scrapes) builds plus 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import sys
import time
from typing import Any

import aiohttp

from bench.checks_nginx import loopback_addresses
from bench.engine import NullRunner, config_text
from healthd.config import parse_text
from healthd.daemon import status
from healthd.engine.engine import Engine
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.reconcile import Reconciler
from healthd.web.server import WebServer
from healthd.web.telemetry import Telemetry


class Source:
    """The daemon's part of the status document, over a bare engine."""

    def __init__(self, engine: Engine, telemetry: Telemetry) -> None:
        self.engine = engine
        self.telemetry = telemetry

    async def status_document(self) -> dict[str, Any]:
        return {"config": self.engine.config.path, "reloads": {"ok": 0, "failed": 0},
                **await status.snapshot_dict(await self.engine.snapshot_sliced())}


class StallProbe:
    """A timer every millisecond; the most CPU the thread used between two of its turns is the
    longest the loop was held by one stretch of work."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.thread_time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.thread_time() - before)

    def __enter__(self) -> StallProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@dataclasses.dataclass
class Cost:
    cpu_ms: float
    wall_ms: float
    stall_ms: float
    size_kb: float


async def measure(fetch: Any, scrapes: int) -> Cost:
    cpu, wall, stall, size = [], [], [], 0
    for _ in range(scrapes):
        await asyncio.sleep(0.05)
        with StallProbe() as probe:
            await asyncio.sleep(0.005)  # let the probe start
            probe.worst = 0.0
            c0, w0 = time.process_time(), time.monotonic()
            body = await fetch()
            c1, w1 = time.process_time(), time.monotonic()
            await asyncio.sleep(0.005)
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
        stall.append(probe.worst)
        size = len(body)
    return Cost(1000 * sorted(cpu)[len(cpu) // 2], 1000 * sorted(wall)[len(wall) // 2],
                1000 * max(stall), size / 1024)


async def run_size(n: int, scrapes: int, interval: float) -> dict[str, Cost]:
    config = parse_text(config_text(loopback_addresses(n), interval, 3.0), f"bench-web-{n}.cf")
    telemetry = Telemetry()
    engine = Engine(config, NullRunner(set(), set()), Reconciler(MemoryTable()))
    telemetry.attach(engine.events)
    gc.collect()
    await engine.start()
    server = WebServer("127.0.0.1", 0, Source(engine, telemetry), max_age=0.0)
    await server.start()
    out: dict[str, Cost] = {}
    try:
        await asyncio.wait_for(engine.first_round.wait(), interval + 15)
        async with aiohttp.ClientSession() as session:
            async def get(path: str) -> bytes:
                async with session.get(server.url + path) as response:
                    assert response.status == 200
                    return await response.read()

            out["/metrics"] = await measure(lambda: get("metrics"), scrapes)
            out["/status.json"] = await measure(lambda: get("status.json"), scrapes)

        async def before() -> bytes:
            snap = dataclasses.asdict(engine.snapshot())
            return json.dumps(snap).encode()

        out["status before slicing"] = await measure(before, max(1, scrapes // 2))
    finally:
        await server.close()
        await engine.stop()
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench web", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"scrape cost, median of {args.scrapes} (stall: the worst), checks running every "
          f"{args.interval:g} s beside it")
    results = {}
    for n in sizes:
        results[n] = asyncio.run(run_size(n, args.scrapes, args.interval))
        print(f"\n{n} reals")
        for what, cost in results[n].items():
            print(f"  {what:<22} CPU {cost.cpu_ms:7.1f} ms  wall {cost.wall_ms:7.1f} ms  "
                  f"longest loop stall (CPU) {cost.stall_ms:6.1f} ms  {cost.size_kb:8.0f} KiB")
    if len(sizes) > 1:
        a, b = sizes[0], sizes[-1]
        ratio = results[b]["/metrics"].cpu_ms / max(results[a]["/metrics"].cpu_ms, 1e-9)
        print(f"\n/metrics CPU at {b} vs {a} reals: x{ratio:.1f} (reals x{b / a:g})")
    for n in sizes:
        r = results[n]
        old = r["status before slicing"].stall_ms
        new = max(r["/metrics"].stall_ms, r["/status.json"].stall_ms)
        print(f"longest stall at {n} reals: {new:.1f} ms sliced vs {old:.1f} ms unsliced "
              f"(x{old / max(new, 1e-9):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
