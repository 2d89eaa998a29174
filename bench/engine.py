"""The whole engine at scale: N reals on distinct loopback addresses, HTTP negotiate checks, in-memory table.

    python -m bench engine [--sizes 100,1000,10000] [--window 10] [--interval 1] [--timeout 3]

For each N: nginx (one worker, its own process, not counted) answers on N-10
addresses 127.77.x.y; the 10 "victims" are served by two more nginx processes.
The engine checks every real every `interval` s (`checktimeout` = `timeout`,
failurecount 1, receive "ok") against the real Reconciler and MemoryTable.

After the first round it measures, over `window` seconds:
  - the achieved check rate and lateness (actual start - scheduled start),
  - CPU of this process (user+sys) per check and as a share of one core, RSS.
Then at t0 it SIGKILLs the nginx of 5 victims (they refuse: RST) and SIGSTOPs the
nginx of the other 5 (they hang: the kernel still accepts, nobody answers), and
records, per victim, when the first desired table without it reached the reconciler.
Targets (issue 4): N=10,000 at p99 lateness < 100 ms, < 1 core, RSS < 200 MB;
detection <= interval + 0.1 s (refusing), <= interval + timeout + 0.1 s (hanging).
Bounded: each size stops after its window plus interval + timeout + 5 s of detection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.checks_nginx import loopback_addresses, nginx
from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec, Outcome
from healthd.config import parse_text
from healthd.engine import events
from healthd.engine.engine import Engine
from healthd.engine.policy import service_key
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.model import ServiceKey, Table
from healthd.ipvs.reconcile import Reconciler
from healthd.vocab import State

PORT = 18990
REALS_PER_VIRTUAL = 100
VICTIMS = 5  # of each kind

def config_text(addresses: list[str], interval: float, timeout: float) -> str:
    out = [f"checkinterval={interval:g}", f"checktimeout={timeout:g}", "failurecount=1", "quiescent=no", ""]
    for i in range(0, len(addresses), REALS_PER_VIRTUAL):
        n = i // REALS_PER_VIRTUAL
        out.append(f"virtual=10.{n // 250}.{n % 250}.1:80")
        out += [f"\treal={a}:{PORT} masq" for a in addresses[i : i + REALS_PER_VIRTUAL]]
        out += ["\tservice=http", '\trequest="/"', '\treceive="ok"', "\tscheduler=wrr", ""]
    return "\n".join(out)


class WatchingReconciler(Reconciler):
    """The real reconciler, noting when a desired table first leaves out each watched real."""

    def __init__(self, backend: MemoryTable) -> None:
        super().__init__(backend)
        self.watch: dict[str, ServiceKey] = {}  # address -> its virtual
        self.gone_at: dict[str, float] = {}
        self.sync_seconds: list[float] = []
        self.all_gone = asyncio.Event()

    async def sync(self, desired: Table, managed: object) -> None:  # type: ignore[override]
        now = time.monotonic()
        for address, key in self.watch.items():
            if address in self.gone_at:
                continue
            entry = desired.get(key)
            if entry is None or not any(d.address == address and d.weight > 0 for d in entry.dests.values()):
                self.gone_at[address] = now
        if self.watch and len(self.gone_at) == len(self.watch):
            self.all_gone.set()
        await super().sync(desired, managed)  # type: ignore[arg-type]
        self.sync_seconds.append(time.monotonic() - now)


@dataclass
class Result:
    n: int
    rate: float
    lateness_median_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    cpu_us_per_check: float
    cpu_share: float
    rss_mb: float
    max_rss_mb: float
    skipped: int
    shed: int
    deferred: int
    failures: int
    refuse_ms: list[float]
    hang_ms: list[float]
    hang_by_timeout: int
    timeline: list[tuple[str, str, float | None, float | None, str]]  # victim, kind, verdict ms, table ms
    health: Counter[tuple[str, str]]  # (state, failure detail) -> reals, at the end of the window
    sync_ms: list[float]  # how long each Reconciler.sync took


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class NullRunner:
    """Checks without I/O, to measure the engine alone: instant verdicts; after `failing` is set,
    refusers fail at once and hangers answer only at their deadline."""

    def __init__(self, refusers: set[str], hangers: set[str]) -> None:
        self.refusers, self.hangers = refusers, hangers
        self.failing = False
        self._ok = Outcome(True, "ok (no I/O)", 0.0)

    async def start(self, services: object = None) -> None:  # the services CheckRunner would prepare
        pass

    async def close(self) -> None:
        pass

    async def run(self, spec: CheckSpec) -> Outcome:
        if self.failing:
            if spec.address in self.refusers:
                return Outcome(False, "connection refused (simulated)", 0.0)
            if spec.address in self.hangers:
                await asyncio.sleep(spec.deadline)
                return Outcome(False, f"timed out after {spec.deadline:g} s (simulated)", spec.deadline)
        return self._ok


async def run_size(n: int, window: float, interval: float, check_timeout: float,
                   null_checks: bool = False) -> Result:
    addresses = loopback_addresses(n)
    victims = addresses[-2 * VICTIMS :]
    refusers, hangers = victims[:VICTIMS], victims[VICTIMS:]
    crowd = addresses[: n - 2 * VICTIMS]
    config = parse_text(config_text(addresses, interval, check_timeout), f"bench-{n}.cf")
    key_of = {r.address: service_key(v) for v in config.virtuals for r in v.reals}

    with contextlib.ExitStack() as stack:
        if null_checks:
            null = NullRunner(set(refusers), set(hangers))
            runner: CheckRunner | NullRunner = null
        else:
            stack.enter_context(nginx(crowd, PORT))
            refuse_proc = stack.enter_context(nginx(refusers, PORT))
            hang_proc = stack.enter_context(nginx(hangers, PORT))
            runner = CheckRunner()
        table = MemoryTable()
        reconciler = WatchingReconciler(table)
        failing_detail: dict[str, str] = {}
        down_at: dict[str, float] = {}
        bad = 0

        def on_event(event: events.Event) -> None:
            nonlocal bad
            if isinstance(event, events.RealChanged) and event.new is State.DOWN:
                bad += 1
                if event.outcome is not None:
                    failing_detail.setdefault(event.real.address, event.outcome.detail)
                    down_at.setdefault(event.real.address, time.monotonic())

        engine = Engine(config, runner, reconciler, on_event=on_event)
        gc.collect()
        await engine.start()
        try:
            await asyncio.wait_for(engine.first_round.wait(), interval + check_timeout + 10)
            await asyncio.sleep(interval)  # let the start-up spread settle into the steady rhythm
            sched = engine.scheduler
            sched.lateness.reset()
            runs0, skipped0, shed0, deferred0 = (sched.runs_finished, sched.ticks_skipped, sched.ticks_shed,
                                                 sched.ticks_deferred)
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(window)
            cpu1, wall1 = time.process_time(), time.monotonic()
            runs = sched.runs_finished - runs0
            stats = sched.stats(exact=True)
            rss = rss_mb()
            health = Counter()
            for real_spec in engine._users:
                rec = engine.health.get(real_spec)
                if rec is not None:
                    health[(str(rec.state), rec.last.detail if rec.last and not rec.last.ok else "")] += 1

            reconciler.watch = {a: key_of[a] for a in victims}
            failing_detail.clear()
            down_at.clear()
            bad_before_t0 = bad
            t0 = time.monotonic()
            if null_checks:
                null.failing = True
            else:
                os.killpg(refuse_proc.pid, signal.SIGKILL)
                os.killpg(hang_proc.pid, signal.SIGSTOP)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reconciler.all_gone.wait(), interval + check_timeout + 5)
        finally:
            await engine.stop(cleanstop=True)  # closes the runner too

    def since_t0(at: float | None) -> float | None:
        return None if at is None else (at - t0) * 1000

    timeline = [(a, "refuses" if a in refusers else "hangs", since_t0(down_at.get(a)),
                 since_t0(reconciler.gone_at.get(a)), failing_detail.get(a, "")) for a in victims]
    def ms(addrs: list[str]) -> list[float]:
        return sorted((reconciler.gone_at[a] - t0) * 1000 for a in addrs if a in reconciler.gone_at)

    return Result(
        n=n,
        rate=runs / (wall1 - wall0),
        lateness_median_ms=stats.lateness_median * 1000,
        lateness_p99_ms=stats.lateness_p99 * 1000,
        lateness_max_ms=stats.lateness_max * 1000,
        cpu_us_per_check=(cpu1 - cpu0) / max(runs, 1) * 1e6,
        cpu_share=(cpu1 - cpu0) / (wall1 - wall0),
        rss_mb=rss,
        max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        skipped=stats.ticks_skipped - skipped0,
        shed=stats.ticks_shed - shed0,
        deferred=stats.ticks_deferred - deferred0,
        failures=bad_before_t0,
        refuse_ms=ms(refusers),
        hang_ms=ms(hangers),
        hang_by_timeout=sum(1 for a in hangers if "timed out" in failing_detail.get(a, "")),
        timeline=timeline,
        health=health,
        sync_ms=sorted(x * 1000 for x in reconciler.sync_seconds),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _fmt(values: list[float]) -> str:
    if not values:
        return "none detected"
    return f"median {statistics.median(values):.0f} ms, max {max(values):.0f} ms ({len(values)}/{VICTIMS})"


def report(r: Result, interval: float, timeout: float, verbose: bool = False) -> None:
    print(f"N={r.n}")
    print(f"  check rate        {r.rate:9.0f} /s   (expected {r.n / interval:.0f} /s)")
    print(f"  lateness          median {r.lateness_median_ms:.2f} ms, p99 {r.lateness_p99_ms:.2f} ms, "
          f"max {r.lateness_max_ms:.1f} ms   (target p99 < 100 ms)")
    print(f"  CPU               {r.cpu_us_per_check:9.1f} us per check, {r.cpu_share * 100:.0f}% of one core")
    print(f"  RSS               {r.rss_mb:9.1f} MB (peak {r.max_rss_mb:.1f} MB)   (target < 200 MB)")
    print(f"  ticks             {r.skipped} skipped (a run still in flight), {r.deferred} deferred and "
          f"{r.shed} shed (overload); reals reported down before t0: {r.failures}")
    states = ", ".join(f"{n} {state}{f' ({detail})' if detail else ''}"
                       for (state, detail), n in r.health.most_common(4))
    print(f"  reals at t0       {states}")
    if r.sync_ms:
        print(f"  table syncs       {len(r.sync_ms)}, median {statistics.median(r.sync_ms):.1f} ms, "
              f"max {r.sync_ms[-1]:.1f} ms (Reconciler.sync on the in-memory table)")
    print(f"  detect refusing   {_fmt(r.refuse_ms)}   (target <= {(interval + 0.1) * 1000:.0f} ms)")
    print(f"  detect hanging    {_fmt(r.hang_ms)}, {r.hang_by_timeout} by timeout   "
          f"(target <= {(interval + timeout + 0.1) * 1000:.0f} ms)")
    if verbose:
        for address, kind, verdict, gone, detail in r.timeline:
            print(f"    {address:15} {kind:8} verdict {_ms(verdict)}, out of the table {_ms(gone)}: {detail}")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated N (default %(default)s)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per size")
    parser.add_argument("--interval", type=float, default=1.0, help="checkinterval (s)")
    parser.add_argument("--timeout", type=float, default=3.0, help="checktimeout (s)")
    parser.add_argument("--verbose", action="store_true", help="print each victim's timeline")
    parser.add_argument("--null-checks", action="store_true",
                        help="no network, no nginx: instant simulated verdicts, to measure the engine alone")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if any(n < 2 * VICTIMS + 1 for n in sizes):
        parser.error(f"every size must be at least {2 * VICTIMS + 1}")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # nginx listens on N addresses
    what = "simulated checks (no I/O)" if args.null_checks else "HTTP checks against nginx"
    print(f"healthd engine bench, {what}: checkinterval={args.interval:g} checktimeout={args.timeout:g} "
          f"window={args.window:g}s, one event loop, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    for n in sizes:
        result = asyncio.run(run_size(n, args.window, args.interval, args.timeout, args.null_checks))
        report(result, args.interval, args.timeout, args.verbose)
    return 0
