"""`execute=FILE`: the daemon starts, reloads, reports and stops one more healthd per named file.

Real processes throughout: the parent is `healthd -d --ipvs memory PARENT start`;
each child is the detached `healthd --ipvs memory CHILD start` it runs, with its own
pidfile and control socket in $HEALTHD_RUNDIR, checking its own real on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from healthd.daemon import control, pidfile
from tests.integration.daemon.helpers import Healthd, WebServer, config_text, reals_of, web_servers

VIP = "127.0.0.140"
ADDRESSES = ["127.0.0.42", "127.0.0.43", "127.0.0.44"]


@pytest.fixture
async def servers() -> AsyncIterator[list[WebServer]]:
    async with web_servers(ADDRESSES) as started:
        yield started


def write(path: Path, vip_port: int, real: WebServer, logdir: Path, execute: list[Path]) -> None:
    head = f'logfile="{logdir / (path.name + ".log")}"\n' + "".join(f"execute={e}\n" for e in execute)
    path.write_text(config_text(VIP, vip_port, [real.address], head=head).replace(f":{vip_port} masq",
                                                                                   f":{real.port} masq"))


def child_status(rundir: Path, config: Path) -> tuple[pidfile.Status, dict[str, Any] | None]:
    os.environ["HEALTHD_RUNDIR"] = str(rundir)
    try:
        state, _pid = pidfile.status(pidfile.pidfile_path(str(config)))
        if state is not pidfile.Status.RUNNING:
            return state, None
        try:
            return state, control.query(pidfile.socket_path(str(config)))
        except control.ControlUnavailable:
            return state, None
    finally:
        del os.environ["HEALTHD_RUNDIR"]


async def wait_child(rundir: Path, config: Path, running: bool, limit: float = 30.0) -> dict[str, Any] | None:
    async with asyncio.timeout(limit):
        while True:
            state, live = await asyncio.to_thread(child_status, rundir, config)
            if not running and state is not pidfile.Status.RUNNING:
                return None
            if running and live is not None and live["ready"]:
                return live
            await asyncio.sleep(0.1)


async def test_children_follow_their_parent(tmp_path: Path, servers: list[WebServer]) -> None:
    rundir, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    parent, first, second = tmp_path / "parent.cf", tmp_path / "first.cf", tmp_path / "second.cf"
    write(first, 8001, servers[1], logs, [])
    write(second, 8002, servers[2], logs, [])
    write(parent, 8000, servers[0], logs, [first])
    daemon = Healthd(parent, rundir, None, {})
    await daemon.start()
    try:
        await daemon.wait_status(lambda s: s["ready"])
        live = await wait_child(rundir, first, running=True)
        assert live is not None and set(reals_of(live)) == {servers[1].label}
        assert (rundir / "healthd.first.cf.pid").exists() and (rundir / "healthd.parent.cf.pid").exists()

        # status: the parent's, then each child's, as ldirectord prints its children's
        code, out = await daemon.cli(str(parent), "status")
        assert code == 0, out
        assert f"healthd for {parent} is running" in out
        assert f"healthd for {first} (execute={first}) is running with pid" in out
        assert out.count("1/1 reals up in 1 virtual service") == 2

        # reload: a file that left is stopped, a new one started
        write(parent, 8000, servers[0], logs, [second])
        assert daemon.proc is not None
        os.kill(daemon.proc.pid, signal.SIGHUP)
        await wait_child(rundir, first, running=False)
        live = await wait_child(rundir, second, running=True)
        assert live is not None and set(reals_of(live)) == {servers[2].label}
        assert live["reloaded"] is None

        # reload again: the child that stays is reloaded, not restarted
        pid_before = live["pid"]
        os.kill(daemon.proc.pid, signal.SIGHUP)
        async with asyncio.timeout(30):
            while live is None or live["reloaded"] is None:
                await asyncio.sleep(0.1)
                live = await wait_child(rundir, second, running=True)
        assert live["pid"] == pid_before

        # stop: the parent stops its children
        daemon.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.proc.wait(), 30) == 0
        assert await wait_child(rundir, second, running=False, limit=5) is None
        assert not (rundir / "healthd.second.cf.pid").exists()
        assert "Traceback" not in daemon.text()
    finally:
        await daemon.close()
        for child in (first, second):  # never leave a detached daemon behind a failed test
            with contextlib.suppress(Exception):
                await daemon.cli(str(child), "stop")
