"""Loading a big ldirectord.cf, and what a real listed in several virtuals costs the engine.

    python -m bench config [--sizes 1000,5000,10000] [--repeat 3] [--window 5] [--null-checks]

Part 1, parse + validate: for each N, three generated files (one virtual with N reals; N/100
virtuals of 100 reals; one virtual whose reals are `a->b` ranges of 250 addresses), each
loaded with `healthd.config.load` (lex, parse, resolve, defaults, every cross-check: all of
what a reload or `check-config` does before anything runs) `repeat` times; the CPU time
of the best run is the figure. Two floors are measured in the same run on the same file:
reading it and splitting it into decoded lines, and that plus one regex per line (the least
any line-oriented parser does). `healthd check-config FILE` (text, then --json) is timed as
a user runs it, in a fresh process: interpreter start, imports, load, rendering, printing.

Part 2, one check per identity: 1,000 reals in 1 virtual, the same 1,000 reals each listed
in 5 virtuals (5,000 destinations), and as a control the same 5,000 destinations where each
virtual's port is the check port (reals without a port: ldirectord checks each virtual's own
port, so those are 5,000 distinct checks). The engine runs each config for `window` seconds
(checkinterval 1, in-memory table) against nginx on loopback (or instant simulated checks
with --null-checks); printed: distinct check identities, checks/s, CPU per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.checks_nginx import loopback_addresses, nginx
from bench.engine import NullRunner
from healthd.checks.runner import CheckRunner
from healthd.config import Config, load, parse_text
from healthd.config.lexer import split_lines
from healthd.engine.engine import Engine
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.reconcile import Reconciler

# The previous figures (issue 15, "Reload at 10,000 reals": "today 5,000 take ~1.3 s"), and main
# at cba0a95 measured with this bench's generator on this machine at the start of the session
# that made it (CPU of healthd.config.load, load average 3.4): 5,000 -> 0.33 s, 10,000 -> 0.65 s.
ISSUE_5000_S = 1.3
MAIN_BEFORE_S = {5000: 0.33, 10000: 0.65}
TARGET_10000_S = 1.0

PORT = 18993  # nginx's port for part 2; 127.93.x.y so that other benchmarks' nginx is not in the way
FIRST_OCTET = 93
_LINE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*(?:=\s*(.*))?")

_HEAD = ["checkinterval=1", "checktimeout=3", "quiescent=no", ""]
_CHECK = ["\tservice=http", '\trequest="/ok.html"', '\treceive="ok"', "\tscheduler=wrr", ""]


def _real(i: int) -> str:
    return f"10.{1 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"


def one_virtual(n: int) -> str:
    reals = [f"\treal={_real(i)}:8080 masq" for i in range(n)]
    return "\n".join([*_HEAD, "virtual=10.9.0.1:80", *reals, *_CHECK])


def hundred_per_virtual(n: int) -> str:
    out = list(_HEAD)
    for v in range(n // 100):
        out.append(f"virtual=10.9.{v // 250}.{v % 250 + 1}:80")
        out += [f"\treal={_real(i)}:8080 masq" for i in range(v * 100, (v + 1) * 100)]
        out += _CHECK
    return "\n".join(out)


def ranges(n: int) -> str:
    lines = []
    for start in range(0, n, 250):
        count = min(250, n - start)
        lines.append(f"\treal={_real(start)}->{_real(start + count - 1)}:8080 masq")
    return "\n".join([*_HEAD, "virtual=10.9.0.1:80", *lines, *_CHECK])


SHAPES: dict[str, Callable[[int], str]] = {
    "1 virtual": one_virtual, "100 per virtual": hundred_per_virtual, "ranges of 250": ranges,
}


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def floor_split(path: str) -> None:
    with open(path, "rb") as f:
        split_lines(f.read())


def floor_regex(path: str) -> None:
    with open(path, "rb") as f:
        for _, text in split_lines(f.read()):
            if text is not None:
                _LINE.match(text)


def loaded(path: str) -> Config:
    return load(path)


def child_cpu(argv: list[str]) -> tuple[float, float, int]:
    """(CPU s, wall s, exit status) of a fresh process running `argv`, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.returncode


def parse_part(sizes: list[int], repeat: int, root: Path) -> None:
    print(f"parse + validate (healthd.config.load), CPU of the best of {repeat} runs; "
          "floors measured in this run")
    print(f"  {'reals':>6}  {'shape':16} {'load':>8}  {'per real':>9}  {'x read+split':>12}  "
          f"{'x +1 regex':>10}  vs before")
    for n in sizes:
        for shape, make in SHAPES.items():
            path = str(root / f"{n}-{shape.replace(' ', '-')}.cf")
            Path(path).write_text(make(n))
            config = loaded(path)
            assert sum(len(v.reals) for v in config.virtuals) == n, "the generator's file is not what it says"
            cpu = best_cpu(lambda path=path: loaded(path), repeat)  # type: ignore[misc]
            split = best_cpu(lambda path=path: floor_split(path), repeat)  # type: ignore[misc]
            regex = best_cpu(lambda path=path: floor_regex(path), repeat)  # type: ignore[misc]
            before = ""
            if shape == "1 virtual" and n in MAIN_BEFORE_S:
                before = f"main before: {MAIN_BEFORE_S[n]:.2f} s -> x{cpu / MAIN_BEFORE_S[n]:.2f}"
                if n == 5000:
                    before += f"; issue 15's ~{ISSUE_5000_S} s -> x{cpu / ISSUE_5000_S:.2f}"
            if n == 10000 and shape == "1 virtual":
                before += f"; target < {TARGET_10000_S:g} s"
            print(f"  {n:6d}  {shape:16} {cpu * 1000:6.0f} ms  {cpu / n * 1e6:6.1f} us  {cpu / split:12.1f}  "
                  f"{cpu / regex:10.1f}  {before}")
            sys.stdout.flush()
    print()


def check_config_part(n: int, root: Path) -> None:
    path = str(root / f"{n}-check-config.cf")
    Path(path).write_text(one_virtual(n))
    healthd = [sys.executable, "-m", "healthd"]
    print(f"healthd check-config on {n} reals in one virtual "
          "(a fresh process: start, imports, load, render, print)")
    idle_cpu, idle_wall, _ = child_cpu([*healthd, "--help"])
    print(f"  {'python -m healthd --help':34} CPU {idle_cpu:5.2f} s, wall {idle_wall:5.2f} s   "
          "(the interpreter's floor)")
    for extra in ([], ["--json"]):
        cpu, wall, status = child_cpu([*healthd, "check-config", *extra, path])
        name = " ".join(["check-config", *extra, "FILE"])
        print(f"  {name:34} CPU {cpu:5.2f} s, wall {wall:5.2f} s   "
              f"(exit {status}; x{cpu / idle_cpu:.1f} the floor)")
    print()


def sharing_config(reals: list[str], virtuals: int, port_from_virtual: bool) -> str:
    out = ["checkinterval=1", "checktimeout=3", "failurecount=1", "quiescent=no", ""]
    for v in range(virtuals):
        # Control: gate reals without a port are checked on each virtual's own port (ldirectord's
        # rule), so every virtual's checks differ; the main rows give every real its port.
        out.append(f"virtual=10.8.0.{v + 1}:{PORT + v if port_from_virtual else 80}")
        out += [f"\treal={a}" + (" gate" if port_from_virtual else f":{PORT} masq") for a in reals]
        out += ["\tservice=http", '\trequest="/"', '\treceive="ok"', ""]
    return "\n".join(out)


async def run_engine(config: Config, window: float, null_checks: bool) -> tuple[int, float, float]:
    """(check identities, checks/s, CPU s per s) of the engine over `window` s after its first round."""
    runner: CheckRunner | NullRunner = NullRunner(set(), set()) if null_checks else CheckRunner()
    engine = Engine(config, runner, Reconciler(MemoryTable()))
    gc.collect()
    await engine.start()
    try:
        await asyncio.wait_for(engine.first_round.wait(), 15)
        await asyncio.sleep(1.0)  # settle into the steady rhythm
        runs0 = engine.scheduler.runs_finished
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(window)
        cpu1, wall1 = time.process_time(), time.monotonic()
        runs = engine.scheduler.runs_finished - runs0
        identities = len({r.check for v in config.virtuals for r in v.reals})
    finally:
        await engine.stop(cleanstop=True)
    return identities, runs / (wall1 - wall0), (cpu1 - cpu0) / (wall1 - wall0)


def sharing_part(window: float, null_checks: bool) -> None:
    n = 1000
    reals = loopback_addresses(n, first_octet=FIRST_OCTET)
    what = ("simulated checks (no I/O)" if null_checks
            else f"HTTP GET / against nginx on {n} loopback addresses")
    print(f"one check per identity: {n} reals, checkinterval 1, {what}, in-memory table, {window:g} s window")
    rows = [(f"{n} reals x 1 virtual", 1, False), (f"{n} reals x 5 virtuals", 5, False),
            ("control: x 5, port per virtual", 5, True)]
    ports = [PORT + v for v in range(5)]
    with contextlib.ExitStack() as stack:
        if not null_checks:
            for port in ports:
                stack.enter_context(nginx(reals, port))
        base: tuple[float, float] | None = None
        for name, virtuals, per_virtual in rows:
            config = parse_text(sharing_config(reals, virtuals, per_virtual), "sharing.cf")
            destinations = sum(len(v.reals) for v in config.virtuals)
            identities, rate, cpu = asyncio.run(run_engine(config, window, null_checks))
            ratio = ""
            if base is None:
                base = rate, cpu
            else:
                ratio = f"   x{rate / base[0]:.2f} the checks, x{cpu / base[1]:.2f} the CPU of 1 virtual"
            if rate < 0.9 * identities:
                ratio += "   (checks fell behind: the machine is too busy for this row)"
            print(f"  {name:32} {destinations:5d} destinations, {identities:5d} identities: "
                  f"{rate:6.0f} checks/s (of {identities}/s due), CPU {cpu * 1000:4.0f} ms/s = "
                  f"{cpu / max(rate, 1) * 1e6:4.0f} us per check{ratio}")
            sys.stdout.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench config", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,5000,10000", help="comma-separated N (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per file; the best counts")
    parser.add_argument("--window", type=float, default=5.0, help="seconds each engine row is measured")
    parser.add_argument("--null-checks", action="store_true", help="part 2 without nginx: instant verdicts")
    parser.add_argument("--skip-engine", action="store_true", help="part 1 only")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if any(n < 1 for n in sizes) or args.repeat < 1:
        parser.error("sizes and repeat must be positive")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"healthd config bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"Python {sys.version.split()[0]}\n")
    with tempfile.TemporaryDirectory(prefix="healthd-bench-config-") as tmp:
        root = Path(tmp)
        parse_part(sizes, args.repeat, root)
        check_config_part(max(sizes), root)
    if not args.skip_engine:
        sharing_part(args.window, args.null_checks)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0
