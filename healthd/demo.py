"""`healthd demo`: watch healthd take a failing web server out of the table and put it back, in about 15 s.

No root and no kernel IPVS: three small web servers listen on loopback
addresses, healthd runs on its in-memory IPVS table with a config shaped like
the seed's experiment 4 (HTTP check of ok.html expecting "ok"), and the demo
breaks and then restores one server's ok.html while printing the table and
healthd's log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from healthd.config import load
from healthd.daemon import logs
from healthd.daemon.lifecycle import Daemon
from healthd.daemon.systemd import Notifier
from healthd.daemon.wiring import build_engine
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.model import Table

VIP = "127.0.0.100"
REALS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
BROKEN = REALS[1]
STEP_TIMEOUT = 8.0  # seconds for one visible change (checkinterval is 1 s)

CONFIG = """\
# Written by `healthd demo`: the shape of the seed's experiment 4, on loopback addresses.
checktimeout=3
checkinterval=1
autoreload=yes
quiescent=no

virtual={vip}:{port}
{reals}
\tservice=http
\tscheduler=wrr
\trequest="ok.html"
\treceive="ok"
\tprotocol=tcp
\tchecktype=negotiate
"""


def say(text: str = "") -> None:
    print(text, flush=True)


def render(table: Table) -> str:
    """The table as `ipvsadm -Ln` lays it out."""
    lines = ["    Prot LocalAddress:Port Scheduler Flags",
             "      -> RemoteAddress:Port           Forward Weight"]
    for key in sorted(table):
        entry = table[key]
        lines.append(f"    {key!s:<28} {entry.service.scheduler}")
        for dkey in sorted(entry.dests):
            dest = entry.dests[dkey]
            forward = {"gate": "Route", "masq": "Masq", "ipip": "Tunnel"}[dest.forward.value]
            lines.append(f"      -> {dest.address + ':' + str(dest.port):<28} {forward:<7} {dest.weight}")
    if not table:
        lines.append("    (empty)")
    return "\n".join(lines)


def free_port(addresses: Sequence[str]) -> int:
    """A port free on every address (found on the first, confirmed on the rest)."""
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for address in addresses[1:]:
                with socket.socket() as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port
    raise OSError("no free port on the loopback addresses")


async def start_server(address: str, port: int, docroot: Path) -> web.AppRunner:
    async def page(request: web.Request) -> web.StreamResponse:
        path = docroot / request.match_info["name"]
        if not path.is_file():
            return web.Response(status=404, text="not found\n")
        return web.Response(text=path.read_text())

    app = web.Application()
    app.router.add_get("/{name}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner


class DemoLog(logging.Handler):
    """healthd's log lines, printed as they happen."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"  log | {record.getMessage()}", flush=True)


class Interrupted(Exception):
    """healthd stopped (Ctrl-C reaches it as SIGINT) before the demo was over."""


async def wait_until(what: str, condition: Callable[[Table], bool], table: MemoryTable,
                     running: asyncio.Task[int]) -> bool:
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        if condition(await table.dump()):
            return True
        if running.done():
            raise Interrupted
        await asyncio.sleep(0.1)
    say(f"!! {what} did not happen within {STEP_TIMEOUT:.0f} s")
    return False


def has_real(address: str) -> Callable[[Table], bool]:
    return lambda t: any(d.address == address for e in t.values() for d in e.dests.values())


async def run_demo(workdir: Path) -> int:
    say("healthd demo: this uses healthd's IN-MEMORY IPVS table, not the kernel's.")
    say("It needs no root and changes nothing on this machine; `healthd start` drives the real table.\n")
    port = free_port(REALS)
    runners = []
    docroots = {}
    for address in REALS:
        docroots[address] = workdir / address
        docroots[address].mkdir()
        (docroots[address] / "ok.html").write_text("ok\n")
        runners.append(await start_server(address, port, docroots[address]))
    say(f"Started web servers on {', '.join(f'{a}:{port}' for a in REALS)}, each serving ok.html = 'ok'.")
    config_path = workdir / "ldirectord.cf"
    config_path.write_text(CONFIG.format(
        vip=VIP, port=port,
        reals="\n".join(f"\treal={a}:{port} gate 2" for a in REALS),
    ))
    say(f"Configuration ({config_path}):")
    for line in config_path.read_text().splitlines()[1:]:
        say(f"    {line}")
    say()

    logger = logging.getLogger(logs.LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = DemoLog()
    handler.addFilter(logs.MASKER)
    logger.addHandler(handler)
    table = MemoryTable()
    daemon = Daemon(load(str(config_path)), loader=load,
                    engine_factory=functools.partial(build_engine, backend=table),
                    notifier=Notifier({}), ipvs_kind="memory", watch_interval=0.5)
    running = asyncio.create_task(daemon.run())
    ok = True
    try:
        ready = asyncio.create_task(daemon.ready.wait())
        await asyncio.wait([ready, running], timeout=STEP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if running.done():
            raise Interrupted
        if not daemon.ready.is_set():
            raise TimeoutError
        say("\n== 1. healthd checked every real once and filled the table:")
        say(render(await table.dump()))

        say(f"\n== 2. Breaking {BROKEN}: its ok.html now says 'maintenance' instead of 'ok' ...")
        (docroots[BROKEN] / "ok.html").write_text("maintenance\n")
        gone = lambda t: not has_real(BROKEN)(t)  # noqa: E731 - reads as the condition it is
        ok = await wait_until(f"{BROKEN} leaving the table", gone, table, running)
        say(f"== {BROKEN} left the table:" if ok else "== the table now:")
        say(render(await table.dump()))

        say(f"\n== 3. Restoring {BROKEN}'s ok.html ...")
        (docroots[BROKEN] / "ok.html").write_text("ok\n")
        back = await wait_until(f"{BROKEN} rejoining the table", has_real(BROKEN), table, running)
        ok = ok and back
        say(f"== {BROKEN} is back in the table:" if back else "== the table now:")
        say(render(await table.dump()))
    except TimeoutError:
        say("!! healthd did not finish its first round of checks in time")
        ok = False
    except Interrupted:
        say("\n!! interrupted")
        ok = False
    finally:
        say("\n== 4. Stopping healthd (cleanstop=yes removes the virtual service):")
        daemon.request_stop()
        with contextlib.suppress(Exception):
            await running
        say(render(await table.dump()))
        logger.removeHandler(handler)
        for runner in runners:
            await runner.cleanup()
    if ok:
        say("\nDone: a real server left the table when its check failed and rejoined when it passed.")
        say("Next: `healthd check-config /etc/ha.d/ldirectord.cf`, then `systemctl start healthd` (README).")
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv:
        print(f"healthd demo: unexpected arguments: {' '.join(argv)}", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="healthd-demo-") as tmp:
            return asyncio.run(run_demo(Path(tmp)))
    except OSError as exc:
        print(f"healthd demo: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
