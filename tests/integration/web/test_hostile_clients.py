"""A hostile or greedy client of `healthd --http` slows no check: slow-loris clients, 1,000 scrapes in a row.

healthd runs as an operator starts it (`healthd -d --ipvs memory --http ADDR:PORT CONFIG start`)
and checks 20 web servers on loopback every 0.2 s. While 100 slow-loris clients trickle
header bytes and reconnect whenever they are cut off, one client scrapes /metrics 1,000
times in a row (tests/integration/web/attack.py, a process of its own at the lowest CPU
priority: an attacker's CPU is not the load balancer's; healthd and the reals run at a raised
priority when the test may raise it, so that other work on a shared test machine does not
decide the outcome). The scheduler's own lateness histogram (read from /metrics) is compared
between quiet windows before and after the storm and the storm itself: during the storm
the checks must keep their pace and start as much on time as in the worse quiet window (the
machine's own noise), and no real may be judged down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from healthd.demo import free_port
from tests.integration.daemon.helpers import Healthd

from .attack import get_with_retry
from .common import parse

ADDRESSES = [f"127.0.9.{i}" for i in range(1, 21)]
INTERVAL = 0.2
LORIS = 100
QUIET = 4.0  # seconds of each quiet window
SCRAPES = 1000


def lateness(samples: dict) -> tuple[float, float]:
    """(check ticks, ticks whose run started within 250 ms) since healthd started.

    250 ms: beyond the scheduler's own overload threshold (SHED_LAG, 200 ms), so that a tick
    counts as late when the schedule slipped, not when a busy test machine kept healthd off
    the CPU for a few tens of milliseconds (measured in-process: the web server's longest
    stretch of CPU without yielding during this storm is under 10 ms; the rest is the machine).

    A tick is a run started, a run skipped because the previous run of that real still waited
    for its answer (the real's pace, not the scheduler's), or a run shed or dropped because the
    scheduler was too late; a run held back (deferred) starts late: a tick not on time.
    """
    buckets = {dict(k)["le"]: v for k, v in samples["healthd_scheduler_lateness_seconds_bucket"].items()}
    ticks = (buckets["+Inf"] + samples["healthd_checks_skipped_total"][()]
             + samples["healthd_checks_shed_total"][()] + samples["healthd_checks_dropped_total"][()])
    return ticks, buckets["0.25"]


async def window(port: int) -> tuple[float, float, float]:
    body, _ = await get_with_retry("127.0.0.1", port, "/metrics")
    return lateness(parse(body.decode()))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_farm(port: int) -> asyncio.subprocess.Process:
    """The reals: web servers on ADDRESSES in a process of their own (tests/integration/web/farm.py)."""
    farm = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.web.farm", str(port), *ADDRESSES,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[3])
    assert farm.stdout is not None
    assert await asyncio.wait_for(farm.stdout.readline(), 20) == b"ready\n"
    raise_priority(farm.pid)
    return farm


async def stop_farm(farm: asyncio.subprocess.Process) -> None:
    assert farm.stdin is not None
    farm.stdin.close()
    try:
        await asyncio.wait_for(farm.wait(), 10)
    except TimeoutError:
        farm.kill()
        await farm.wait()


def raise_priority(pid: int) -> None:
    """nice -10 when allowed (root, as in CI): the machine's other work should not win the CPU from the
    processes under test; without the privilege the comparison with the quiet windows still holds."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, pid, -10)


@dataclass
class Window:
    seconds: float
    rate: float  # check ticks per second
    on_time: float  # share of ticks whose run started within 250 ms
    cpu: float  # healthd's CPU, share of one core
    result: Any = None


async def measure(pid: int, port: int, work: Awaitable[Any]) -> Window:
    loop = asyncio.get_running_loop()
    ticks0, ok0 = await window(port)
    cpu0, t0 = cpu_seconds(pid), loop.time()
    result = await work
    ticks1, ok1 = await window(port)
    cpu1, t1 = cpu_seconds(pid), loop.time()
    return Window(t1 - t0, (ticks1 - ticks0) / (t1 - t0), (ok1 - ok0) / (ticks1 - ticks0),
                  (cpu1 - cpu0) / (t1 - t0), result)


async def run_attack(start: Awaitable[asyncio.subprocess.Process]) -> dict[str, Any]:
    attacker = await start
    out, _ = await asyncio.wait_for(attacker.communicate(), 100)
    assert attacker.returncode == 0, out
    return dict(json.loads(out))


async def test_slow_loris_and_a_thousand_scrapes_leave_the_checks_on_time(tmp_path: Path) -> None:
    port = free_port(ADDRESSES)
    farm = await start_farm(port)
    http_port = free_port(["127.0.0.1"])
    config = tmp_path / "hostile.cf"
    reals = "\n".join(f"\treal={a}:{port} masq" for a in ADDRESSES)
    config.write_text(f"checkinterval={INTERVAL}\nchecktimeout=2\nquiescent=no\n"
                      f"virtual=127.0.0.100:{port}\n{reals}\n"
                      '\tservice=http\n\trequest="ok.html"\n\treceive="ok"\n')
    rundir = tmp_path / "run"
    rundir.mkdir()
    healthd = Healthd(config, rundir, None, {})
    healthd.start_args = ("--http", f"127.0.0.1:{http_port}")
    await healthd.start()
    assert healthd.proc is not None
    raise_priority(healthd.proc.pid)
    try:
        status = await healthd.wait_status(
            lambda s: s.get("ready") and s["summary"].startswith(f"{len(ADDRESSES)}/"))
        assert status["http"] == f"http://127.0.0.1:{http_port}/"

        # quiet windows before and after the storm: the same checks, the same machine, nobody at the
        # HTTP port; the storm must do no worse than the worse of them (the machine's own noise)
        windows = [await measure(healthd.proc.pid, http_port, asyncio.sleep(QUIET))]
        attack = asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.web.attack", str(http_port), str(LORIS), str(SCRAPES),
            stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[3])
        storm = await measure(healthd.proc.pid, http_port, run_attack(attack))
        windows.append(await measure(healthd.proc.pid, http_port, asyncio.sleep(QUIET)))
        result = storm.result
        for name, w in (("quiet", windows[0]), ("storm", storm), ("quiet", windows[1])):
            print(f"\n{name} {w.seconds:.1f} s: {w.rate:.0f} check ticks/s, {w.on_time:.2%} started within "
                  f"250 ms, healthd CPU {w.cpu:.0%}", end="")
        print(f"\nstorm: {SCRAPES} scrapes in {result['seconds']:.1f} s ({result['retries']} retried) beside "
              f"{LORIS} slow-loris clients, cut off {result['cut']} times")
        assert result["cut"] >= LORIS  # the slow clients were cut off (and came back), never served
        assert result["retries"] < SCRAPES * 0.02  # the scraper was served: slow clients evict each other
        # The schedule kept its time. The margin is the machine's: on a shared 2-core test machine at
        # load 6-9, quiet windows alone ranged from 78% to 100% on time; healthd's own part is
        # measured exactly (CPU, not wall clock) by the next test.
        assert storm.on_time >= min(0.8, min(w.on_time for w in windows) - 0.15)
        final = json.loads((await get_with_retry("127.0.0.1", http_port, "/status.json"))[0])
        assert final["summary"].startswith(f"{len(ADDRESSES)}/{len(ADDRESSES)} reals up")
        assert not [t for t in final["transitions"] if t["new"] == "down"]  # no real was judged down
    finally:
        await healthd.close()
        await stop_farm(farm)


async def test_the_web_server_never_holds_the_loop(tmp_path: Path) -> None:
    """The same storm against a server in this process, beside an engine checking real loopback servers:
    the longest stretch of CPU the event loop spends without a turn of a 1 ms probe timer (CPU time,
    so that other work on the machine does not count) stays far below a check interval."""
    from healthd.config import parse_text
    from healthd.daemon.wiring import build_engine
    from healthd.ipvs.memory import MemoryTable
    from healthd.web.server import WebServer
    from healthd.web.telemetry import Telemetry

    from .bench_source import EngineSource

    port = free_port(ADDRESSES)
    farm = await start_farm(port)
    reals = "\n".join(f"\treal={a}:{port} masq" for a in ADDRESSES)
    config = parse_text(f"checkinterval={INTERVAL}\nchecktimeout=2\nquiescent=no\n"
                        f"virtual=127.0.0.100:{port}\n{reals}\n"
                        '\tservice=http\n\trequest="ok.html"\n\treceive="ok"\n', "loop.cf")
    telemetry = Telemetry()
    engine = build_engine(config, MemoryTable())
    telemetry.attach(engine.events)
    await engine.start()
    server = WebServer("127.0.0.1", 0, EngineSource(engine, telemetry))
    await server.start()
    worst = [0.0]

    async def probe() -> None:
        while True:
            before = time.thread_time()
            await asyncio.sleep(0.001)
            worst[0] = max(worst[0], time.thread_time() - before)

    probing = asyncio.create_task(probe())
    try:
        await asyncio.wait_for(engine.first_round.wait(), 10)
        result = await run_attack(asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.web.attack", str(server.port), str(LORIS), str(SCRAPES),
            stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[3]))
        stats = engine.scheduler.stats()
        print(f"\nlongest CPU stretch of the loop during the storm: {worst[0] * 1000:.1f} ms "
              f"({server._server.evicted if server._server else 0} slow clients evicted)")
        assert result["retries"] < SCRAPES * 0.02
        assert worst[0] < 0.05  # far below the 0.2 s check interval and the scheduler's SHED_LAG
        assert stats.runs_started > 0 and stats.overruns == 0
        assert all(r.state == "up" for v in engine.snapshot().virtuals for r in v.reals)
    finally:
        probing.cancel()
        await server.close()
        await engine.stop()
        await stop_farm(farm)
