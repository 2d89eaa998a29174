"""Benchmark: apply a 10,000-real table (100 services) from empty, and dump + diff it with nothing to
change, against `ipvsadm -R` restoring the same table in the same kernel.

On a machine without IPVS it boots the test VM and runs itself there (python -m bench ipvs).
Options: --services N --reals N (per service) --rounds N (best of N).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from healthd.ipvs.model import Dest, Entry, Family, Forward, Service, ServiceKey, ServiceProtocol, Table
from healthd.ipvs.reconcile import Reconciler, diff


def build_table(services: int, reals: int) -> Table:
    table: dict[ServiceKey, Entry] = {}
    for i in range(services):
        key = ServiceKey(Family.INET, ServiceProtocol.TCP, f"10.1.{i // 250}.{i % 250 + 1}", 80)
        dests = {}
        for j in range(reals):
            forward = Forward.GATE if j % 2 else Forward.MASQ
            d = Dest(f"10.{2 + j // 250}.{i % 250}.{j % 250 + 1}", 80, forward, 1 + j % 10)
            dests[d.key] = d
        table[key] = Entry(Service(key, "wrr"), dests)
    return table


def restore_script(table: Table) -> str:
    fwd = {Forward.GATE: "-g", Forward.MASQ: "-m", Forward.IPIP: "-i"}
    lines = []
    for key, e in table.items():
        lines.append(f"-A -t {key.address}:{key.port} -s {e.service.scheduler}")
        lines += [f"-a -t {key.address}:{key.port} -r {d.address}:{d.port} {fwd[d.forward]} -w {d.weight}"
                  for d in e.dests.values()]
    return "\n".join(lines) + "\n"


async def ipvsadm(args: list[str], stdin_path: str | None = None) -> None:
    stdin = os.open(stdin_path, os.O_RDONLY) if stdin_path else subprocess.DEVNULL
    try:
        proc = await asyncio.create_subprocess_exec("ipvsadm", *args, stdin=stdin, stdout=subprocess.DEVNULL)
        if await proc.wait():
            raise RuntimeError(f"ipvsadm {' '.join(args)} exited with {proc.returncode}")
    finally:
        if stdin_path:
            os.close(stdin)


async def run(services: int, reals: int, rounds: int) -> int:
    from healthd.ipvs.netlink import NetlinkTable

    desired = build_table(services, reals)
    managed = set(desired)
    total = services * reals
    table = await NetlinkTable.open()
    best: dict[str, float] = {}

    def note(name: str, seconds: float) -> None:
        best[name] = min(seconds, best.get(name, seconds))

    with tempfile.NamedTemporaryFile("w", suffix=".ipvs", delete=False) as f:
        f.write(restore_script(desired))
        script = f.name
    try:
        for _ in range(rounds):
            await table.flush()
            t = time.perf_counter()
            await ipvsadm(["-R"], stdin_path=script)
            note("ipvsadm -R", time.perf_counter() - t)
            t = time.perf_counter()
            await ipvsadm(["-Ln"])
            note("ipvsadm -Ln", time.perf_counter() - t)
            restored = await table.dump()
            if wrong := diff(desired, restored, managed):
                print(f"bench: ipvsadm -R built another table: {len(wrong)} differences, first {wrong[0]}",
                      file=sys.stderr)
                return 1

            await table.flush()
            rec = Reconciler(table)
            t = time.perf_counter()
            await rec.sync(desired, managed)
            note("healthd apply from empty", time.perf_counter() - t)
            if len(rec.last_ops) != services + total:
                print(f"bench: expected {services + total} operations, got {len(rec.last_ops)}",
                      file=sys.stderr)
                return 1

            t = time.perf_counter()
            actual = await table.dump()
            note("healthd dump", time.perf_counter() - t)
            t = time.perf_counter()
            ops = diff(desired, actual, managed)
            note("healthd diff", time.perf_counter() - t)
            if ops:
                print(f"bench: {len(ops)} operations left after apply", file=sys.stderr)
                return 1
            t = time.perf_counter()
            await rec.sync(desired, managed)  # what a periodic resync costs: dump + diff, nothing to do
            note("healthd dump + diff (no change)", time.perf_counter() - t)
    finally:
        await table.flush()
        await table.close()
        os.unlink(script)

    print(f"IPVS table: {services} services x {reals} reals = {total} reals; best of {rounds}")
    for name, seconds in best.items():
        print(f"  {name:34s} {seconds * 1000:9.1f} ms")
    restore = best["ipvsadm -R"]
    print(f"  ratio apply / ipvsadm -R          {best['healthd apply from empty'] / restore:9.2f}")
    print(f"  ratio dump+diff / ipvsadm -R      {best['healthd dump + diff (no change)'] / restore:9.2f}")
    print(f"  ratio dump / ipvsadm -Ln          {best['healthd dump'] / best['ipvsadm -Ln']:9.2f}")
    print(f"  apply rate                        {total / best['healthd apply from empty']:9.0f} reals/s")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ipvs")
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--reals", type=int, default=100, help="per service")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if not (1 <= args.services <= 1000 and 1 <= args.reals <= 1000 and 1 <= args.rounds <= 10):
        parser.error("--services and --reals must be 1..1000, --rounds 1..10")
    if not os.environ.get("HEALTHD_IN_VM") and not Path("/proc/net/ip_vs").exists():
        print("bench: this kernel has no IPVS: running in the test VM", file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "tests.vm.harness", sys.executable, "-m", "bench", "ipvs", *argv]
        return subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1]).returncode
    return asyncio.run(run(args.services, args.reals, args.rounds))
