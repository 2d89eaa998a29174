"""What alert mails and monitorfiles cost the event loop when many reals change at once.

    python -m bench outputs [--reals 10000] [--rounds 10]

monitorfile: N reals in one virtual with a monitorfile (in a temporary directory);
`rounds` check results per real are recorded as the engine would with checkinterval=1
(each round spread over about a second), while the writer thread flushes every 0.5 s.
Prints the loop's cost per line (record), the lines written per second, and the
longest the loop was late for a 10 ms tick meanwhile, beside the same probe's
worst over 2 s of doing nothing (the machine's own noise).

alerts: the same N reals all fail at once (a switch dies), each a "Deleted" mail
for an SMTP server that never answers: prints the loop's cost per event (compose
and submit, or drop once the lane's queue is full) and how many mails were queued.
Nothing leaves the host: the transport waits forever and is cancelled at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from healthd.alerts.alerter import Alerter, Phase
from healthd.alerts.message import Mail
from healthd.alerts.outbox import Outbox
from healthd.checks.spec import Outcome
from healthd.config import parse_text
from healthd.daemon.monitorfile import MonitorFiles


def config_text(reals: int, monitorfile: Path) -> str:
    lines = ["emailalert=ops@example.com", "smtp=127.0.0.1:9", "virtual=10.255.0.1:80"]
    lines += [f"\treal=10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}:80 masq" for i in range(reals)]
    lines += ["\tservice=http", '\trequest="ok.html"', '\treceive="ok"', f'\tmonitorfile="{monitorfile}"']
    return "\n".join(lines) + "\n"


async def lag_probe(stop: asyncio.Event) -> float:
    worst = 0.0
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        worst = max(worst, time.perf_counter() - before - 0.01)
    return worst


class Stuck:
    name = "smtp server that never answers"

    async def send(self, mail: Mail) -> None:
        await asyncio.Event().wait()


async def run(reals: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="healthd-bench-") as tmp:
        path = Path(tmp) / "monitor.log"
        config = parse_text(config_text(reals, path), "bench.cf")
        virtual = config.virtuals[0]
        stop = asyncio.Event()
        idle = asyncio.create_task(lag_probe(stop))
        await asyncio.sleep(2)
        stop.set()
        baseline = await idle
        stop = asyncio.Event()
        files = MonitorFiles(config)
        files.start()
        probe = asyncio.create_task(lag_probe(stop))
        outcome = Outcome(True, "HTTP 200, body matched", 0.001)
        spent = 0.0
        started = time.perf_counter()
        batch = max(1, reals // 100)  # a round's results arrive over one second, as the engine's would
        for _ in range(rounds):
            for start in range(0, reals, batch):
                t0 = time.perf_counter()
                for real in virtual.reals[start:start + batch]:
                    files.record(real.check, outcome)
                spent += time.perf_counter() - t0
                await asyncio.sleep(0.01)
        await files.close()
        elapsed = time.perf_counter() - started
        stop.set()
        worst = await probe
        lines = sum(1 for _ in path.open())
        print(f"monitorfile: {lines} lines ({reals} reals x {rounds}) in {elapsed:.2f} s; "
              f"loop cost {spent / lines * 1e6:.2f} us/line; {lines / elapsed:,.0f} lines/s written; "
              f"worst loop lateness {worst * 1000:.1f} ms (idle: {baseline * 1000:.1f} ms)")

        outbox = Outbox(lambda server: Stuck())
        alerter = Alerter(config, outbox, hostname="bench")
        alerter.set_phase(Phase.RUNNING)
        t0 = time.perf_counter()
        for real in virtual.reals:
            alerter.verdict(virtual, real, False)
        spent = time.perf_counter() - t0
        stats = next(iter(outbox.stats().values()))
        print(f"alerts: {reals} reals down at once: loop cost {spent / reals * 1e6:.1f} us/event; "
              f"{outbox.pending() + 1} mails queued or in flight, {stats.dropped} dropped (queue limit "
              f"{outbox.limit})")
        await outbox.close(0.1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench outputs")
    parser.add_argument("--reals", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    asyncio.run(run(args.reals, args.rounds))
    return 0
