"""Benchmark: what one real changing state costs the table, at 100, 1,000 and 10,000 reals (100 per virtual).

    python -m bench reconcile [--sizes 100,1000,10000] [--events 200] [--backend memory|netlink]

Per size, one real flips (down: removed; up: back at its weight) per event, and the CPU time
(process_time, this process; on netlink the kernel's work in our syscalls is counted too) per event of:
  - full:        Reconciler.sync, what every event cost before: dump the table, diff every service
  - update:      Reconciler.update with the one changed virtual: diff it against the belief, no dump
  - engine:      the engine's whole path for a verdict that changes a real: HealthBook.record,
                 policy + safety for its virtual (100 reals), Reconciler.update
  - floor:       the one backend operation alone (apply_all([op]) of the same add or delete)
and a drift repair (Reconciler.resync: dump + diff of everything, nothing to do) for the slow clock.
The reference row is the previous session's figure (bench/engine_results.md, issue 4): a
Reconciler.sync at 10,000 reals on the in-memory table took 45 ms (quiet) to 216 ms (loaded).
`--backend netlink` runs on the kernel's IPVS table (in the test VM when this kernel has none).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from healthd.checks.spec import Outcome
from healthd.config import parse_text
from healthd.engine.engine import Engine
from healthd.engine.gcfreeze import freeze_long_lived
from healthd.engine.policy import service_key
from healthd.ipvs.backend import Backend
from healthd.ipvs.model import AddDest, DeleteDest, Entry, Operation, ServiceKey
from healthd.ipvs.reconcile import Reconciler

PER_VIRTUAL = 100
PREVIOUS_FULL_MS = (45.0, 216.0)  # bench/engine_results.md: Reconciler.sync at 10,000 reals, quiet / loaded


def config_text(n: int, per_virtual: int = PER_VIRTUAL) -> str:
    out = ["checkinterval=1", "checktimeout=3", "failurecount=1", "quiescent=no", ""]
    for i in range(0, n, per_virtual):
        v = i // per_virtual
        out.append(f"virtual=10.{v // 250}.{v % 250}.1:80")
        out += [f"\treal=10.{100 + j // 62500}.{j // 250 % 250}.{j % 250 + 1}:80 masq"
                for j in range(i, min(n, i + per_virtual))]
        out += ["\tservice=http", '\treceive="ok"', "\tscheduler=wrr", ""]
    return "\n".join(out)


class NoRunner:
    async def start(self, services: object = None) -> None:
        pass

    async def run(self, spec: object) -> Outcome:
        return Outcome(True, "ok", 0.0)

    async def close(self) -> None:
        pass


async def cpu_per_event(events: int, one: Callable[[int], Awaitable[object]]) -> float:
    """CPU seconds per call of one(i), over `events` calls."""
    t0 = time.process_time()
    for i in range(events):
        await one(i)
    return (time.process_time() - t0) / events


async def measure(n: int, events: int, backend: Backend, rng: random.Random,
                  per_virtual: int = PER_VIRTUAL) -> dict[str, float]:
    config = parse_text(config_text(n, per_virtual), f"bench-{n}.cf")
    reconciler = Reconciler(backend)
    engine = Engine(config, NoRunner(), reconciler, resync_interval=None, freeze_gc=False)
    await engine.start()  # adopts the (empty) table, applies the first table: every real pending, none in
    # the bench drives health, policy and the reconciler by hand: no scheduled checks, no applier task
    # (on the kernel's table every await yields to the loop, where they would run)
    await engine.scheduler.stop()
    if engine._applier is not None:
        engine._applier.cancel()
        await asyncio.gather(engine._applier, return_exceptions=True)
    ok, bad = Outcome(True, "ok", 0.0), Outcome(False, "refused", 0.0)
    reals = [(service_key(v), r) for v in config.virtuals for r in v.reals]
    for _key, real in reals:  # every real up: the whole table in
        engine.health.record(real.check, ok)
    engine._replan(set(engine._virtuals))
    await engine._sync_now(None, set(engine._virtuals))
    # `desired` for the reconciler-only rows: its own dest dicts, flipped in place (O(1) per event)
    desired: dict[ServiceKey, Entry] = {key: Entry(entry.service, dict(entry.dests))
                                        for key, entry in engine._desired.items()}
    dests_of = {k: e.dests for k, e in desired.items()}
    all_dests = [(key, dest) for key, entry in engine._desired.items() for dest in entry.dests.values()]
    assert sum(len(e.dests) for e in (await backend.dump()).values()) >= n
    freeze_long_lived()  # as the engine does after start and reload: the model out of the collector's sight

    def flip(i: int) -> tuple[ServiceKey, Operation]:
        """Take one real out of (or put back into) `desired`; the operation that does it."""
        key, dest = all_dests[rng.randrange(len(all_dests))]
        dests = dests_of[key]  # type: ignore[assignment]
        if dest.key in dests:
            op: Operation = DeleteDest(key, dest.key)
            del dests[dest.key]  # type: ignore[attr-defined]
        else:
            op = AddDest(key, dest)
            dests[dest.key] = dest  # type: ignore[index]
        return key, op

    async def full(i: int) -> None:
        flip(i)
        await reconciler.sync(desired, set(desired))

    async def update(i: int) -> None:
        key, _ = flip(i)
        await reconciler.update(desired, {key})

    async def floor(i: int) -> None:
        _, op = flip(i)
        await backend.apply_all([op])

    down: set[int] = set()

    async def engine_path(i: int) -> None:
        index = rng.randrange(len(reals))
        key, real = reals[index]
        outcome = ok if index in down else bad
        down.symmetric_difference_update({index})
        if engine.health.record(real.check, outcome) is not None:
            engine._replan({key})
            await engine._sync_now(None, {key})

    async def resync(i: int) -> None:
        await reconciler.resync()

    result: dict[str, float] = {}
    few = max(5, min(events, 2000 // max(1, n // 100)))  # the full diff is slow at 10,000: fewer events
    result["full"] = await cpu_per_event(few, full)
    await reconciler.sync(desired, set(desired))
    result["update"] = await cpu_per_event(events, update)
    result["floor"] = await cpu_per_event(events, floor)
    await reconciler.sync(desired, set(desired))  # the floor's operations bypassed the belief
    result["engine"] = await cpu_per_event(events, engine_path)
    result["resync"] = await cpu_per_event(max(3, few // 4), resync)
    await engine.stop(cleanstop=True)
    return result


async def run(sizes: list[int], events: int, kind: str, per_virtual: int) -> int:
    rng = random.Random(15)
    print(f"healthd reconcile bench: one real flips per event, {per_virtual} reals per virtual, "
          f"{kind} table, CPU time per event; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'reals':>7} {'full (before)':>14} {'update':>10} {'engine path':>12} {'floor (1 op)':>13} "
          f"{'update/floor':>13} {'full/update':>12} {'resync':>10}")
    rows = []
    for n in sizes:
        backend: Backend
        if kind == "netlink":
            from healthd.ipvs.netlink import NetlinkTable

            backend = await NetlinkTable.open()
            await backend.flush()
        else:
            from healthd.ipvs.memory import MemoryTable

            backend = MemoryTable()
        try:
            r = await measure(n, events, backend, rng, per_virtual)
        finally:
            await backend.close()
        rows.append((n, r))
        print(f"{n:>7} {r['full'] * 1e3:>11.2f} ms {r['update'] * 1e6:>7.0f} µs {r['engine'] * 1e6:>9.0f} µs "
              f"{r['floor'] * 1e6:>10.0f} µs {r['update'] / r['floor']:>12.1f}× "
              f"{r['full'] / r['update']:>11.0f}× "
              f"{r['resync'] * 1e3:>7.1f} ms", flush=True)
    big = [r for n, r in rows if n == 10_000]
    if big and kind == "memory" and per_virtual == PER_VIRTUAL:
        engine_ms = big[0]["engine"] * 1e3
        print(f"reference (issue 4, bench/engine_results.md): Reconciler.sync at 10,000 reals "
              f"{PREVIOUS_FULL_MS[0]:.0f} ms quiet, {PREVIOUS_FULL_MS[1]:.0f} ms loaded per event; "
              f"now the engine's path {engine_ms:.3f} ms: {PREVIOUS_FULL_MS[0] / engine_ms:.0f}× to "
              f"{PREVIOUS_FULL_MS[1] / engine_ms:.0f}× less")
    if len(rows) > 1:
        first, last = rows[0][1], rows[-1][1]
        print(f"growth from {rows[0][0]} to {rows[-1][0]} reals: "
              f"update ×{last['update'] / first['update']:.2f}, "
              f"engine path ×{last['engine'] / first['engine']:.2f}, "
              f"full ×{last['full'] / first['full']:.0f}")
    median = statistics.median(r["update"] for _, r in rows)
    print(f"median over sizes: update {median * 1e6:.0f} µs per event")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench reconcile", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--events", type=int, default=300, help="flips measured per size and path")
    parser.add_argument("--backend", choices=("memory", "netlink"), default="memory")
    parser.add_argument("--per-virtual", type=int, default=PER_VIRTUAL,
                        help="reals per virtual: the cost of an event grows with its virtual's size")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not all(1 <= n <= 50_000 for n in sizes) or not 1 <= args.events <= 100_000 or \
            not 1 <= args.per_virtual <= 50_000:
        parser.error("sizes 1..50000, events 1..100000, --per-virtual 1..50000")
    in_vm = os.environ.get("HEALTHD_IN_VM")
    if args.backend == "netlink" and not in_vm and not Path("/proc/net/ip_vs").exists():
        print("bench: this kernel has no IPVS: running in the test VM", file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "tests.vm.harness", sys.executable, "-m", "bench", "reconcile", *argv]
        return subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1]).returncode
    return asyncio.run(run(sizes, args.events, args.backend, args.per_virtual))
