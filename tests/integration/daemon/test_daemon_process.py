"""The real daemon as a child process, against real web servers on loopback, driven like systemd drives it.

`healthd -d --ipvs memory CONFIG start` with NOTIFY_SOCKET and WATCHDOG_USEC set:
READY after the first round, WATCHDOG pings, STATUS on changes, a broken reload
that keeps the old configuration, a good reload, and SIGTERM handled within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from healthd.demo import free_port
from tests.integration.daemon.helpers import (
    HEALTHD,
    Healthd,
    NotifySocket,
    WebServer,
    config_text,
    reals_of,
    web_servers,
)

VIP = "127.0.0.100"
ADDRESSES = ["127.0.0.12", "127.0.0.13"]

BROKEN = """\
checkinterval=1
no_such_directive=yes
virtual={vip}:{port}
\treal={real}:{port} masq heavy
\tservice=http
"""


@pytest.fixture
async def servers():
    async with web_servers(ADDRESSES) as started:
        yield started


async def test_systemd_style_lifecycle(tmp_path: Path, servers: list[WebServer]) -> None:
    port = servers[0].port
    config = tmp_path / "web.cf"
    config.write_text(config_text(VIP, port, ADDRESSES))
    notify = NotifySocket(tmp_path / "notify")
    daemon = Healthd(config, tmp_path / "run", notify, {"WATCHDOG_USEC": "1000000"})
    await daemon.start()
    try:
        ready = await notify.wait(lambda m: m.get("READY") == "1")
        assert ready["STATUS"] == "2/2 reals up in 1 virtual service"
        await notify.wait(lambda m: m.get("WATCHDOG") == "1")

        code, out = await daemon.cli(str(config), "status")
        assert code == 0 and "is running with pid" in out and "2/2 reals up" in out
        code, out = await daemon.cli("status", "--json", str(config))
        assert code == 0 and json.loads(out)["summary"] == "2/2 reals up in 1 virtual service"
        reals = reals_of(await daemon.status())
        assert {r: (v["state"], v["weight"]) for r, v in reals.items()} == {
            s.label: ("up", 2) for s in servers
        }
        assert reals[servers[0].label]["last_detail"] == "HTTP 200, body matched"

        # A real server fails its check: it leaves the table and systemd's status says so.
        mark = len(notify.messages)
        servers[1].page = "gone\n"
        status = await daemon.wait_status(lambda s: reals_of(s)[servers[1].label]["state"] == "down")
        # The table follows within a moment (the engine batches changes for a few ms).
        status = await daemon.wait_status(lambda s: reals_of(s)[servers[1].label]["weight"] is None)
        assert reals_of(status)[servers[1].label]["state"] == "down"
        await notify.wait(lambda m: m.get("STATUS", "").startswith("1/2 reals up"), after=mark)
        assert f"real server {servers[1].label} of virtual service {VIP}:{port} went down" in daemon.text()

        # A broken file: every FILE:LINE error is logged, the old configuration keeps running.
        config.write_text(BROKEN.format(vip=VIP, port=port, real=ADDRESSES[0]))
        mark = len(notify.messages)
        code, out = await daemon.cli(str(config), "reload")
        assert code == 0, out
        await notify.wait(lambda m: m.get("RELOADING") == "1", after=mark)
        failed = await notify.wait(lambda m: m.get("READY") == "1", after=mark)
        assert "reload failed (2 errors), running the previous configuration" in failed["STATUS"]
        log = daemon.text()
        assert f"{config}:2:" in log and "no_such_directive" in log
        assert f"{config}:4:" in log
        status = await daemon.status()
        assert set(reals_of(status)) == {s.label for s in servers}
        assert [e.split(":")[1] for e in status["reload_errors"]] == ["2", "4"]
        servers[1].page = "ok\n"  # the old config still checks: the real comes back
        await daemon.wait_status(lambda s: reals_of(s)[servers[1].label]["state"] == "up")

        # A good file, by SIGHUP as ExecReload sends it: the new weight lands, no failure is left.
        config.write_text(config_text(VIP, port, ADDRESSES, weight=5))
        mark = len(notify.messages)
        assert daemon.proc is not None
        os.kill(daemon.proc.pid, signal.SIGHUP)
        reloaded = await notify.wait(lambda m: m.get("READY") == "1", after=mark)
        assert reloaded["STATUS"] == "2/2 reals up in 1 virtual service"
        status = await daemon.wait_status(lambda s: all(r["weight"] == 5 for r in reals_of(s).values()))
        assert status["reload_errors"] == []

        # SIGTERM: STOPPING, and the process is gone within a second.
        mark = len(notify.messages)
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(daemon.proc.wait(), 10)
        elapsed = time.monotonic() - started
        assert code == 0
        assert elapsed < 1.0, f"took {elapsed:.2f} s to stop"
        await notify.wait(lambda m: m.get("STOPPING") == "1", after=mark, limit=2)
        code, out = await daemon.cli(str(config), "status")
        assert code == 3 and "is stopped" in out
        assert not (tmp_path / "run" / "healthd.web.cf.pid").exists()
        assert "Traceback" not in daemon.text()
    finally:
        await daemon.close()
        notify.close()


async def test_stop_within_a_second_while_a_check_hangs(tmp_path: Path, servers: list[WebServer]) -> None:
    """A real that accepts and never answers holds a check open for checktimeout; stop must not wait."""
    hang_server = await asyncio.start_server(lambda r, w: asyncio.sleep(60), "127.0.0.14", 0)
    hang_port = hang_server.sockets[0].getsockname()[1]
    config = tmp_path / "web.cf"
    text = config_text(VIP, servers[0].port, ADDRESSES).replace("checktimeout=2", "checktimeout=30")
    text += f"virtual={VIP}:{hang_port}\n\treal=127.0.0.14:{hang_port} masq 1\n\tservice=http\n"
    text += '\trequest="ok.html"\n\treceive="ok"\n\tnegotiatetimeout=30\n'
    config.write_text(text)
    notify = NotifySocket(tmp_path / "notify")
    daemon = Healthd(config, tmp_path / "run", notify, {})
    await daemon.start()
    try:
        await daemon.wait_status(lambda s: reals_of(s)[servers[0].label]["state"] == "up")
        await asyncio.sleep(0.5)  # the hanging check is in flight
        assert daemon.proc is not None
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(daemon.proc.wait(), 10)
        assert time.monotonic() - started < 1.0
    finally:
        hang_server.close()
        await daemon.close()
        notify.close()


async def test_start_with_an_invalid_file_exits_2_listing_every_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.cf"
    config.write_text(BROKEN.format(vip=VIP, port=80, real="127.0.0.12"))
    proc = await asyncio.create_subprocess_exec(
        HEALTHD, "-d", "--ipvs", "memory", str(config), "start",
        env={**os.environ, "HEALTHD_RUNDIR": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    text = err.decode()
    assert f"{config}:2:" in text and f"{config}:4:" in text
    assert "Traceback" not in text


async def test_detached_start_status_stop(tmp_path: Path, servers: list[WebServer]) -> None:
    """Without -d healthd detaches as ldirectord does; `start` returns once the daemon is up."""
    config = tmp_path / "web.cf"
    logfile = tmp_path / "healthd.log"
    config.write_text(config_text(VIP, servers[0].port, ADDRESSES, head=f"logfile={logfile}"))
    env = {**os.environ, "HEALTHD_RUNDIR": str(tmp_path / "run")}
    env.pop("NOTIFY_SOCKET", None)

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            HEALTHD, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode()

    code, out = await cli("--ipvs", "memory", str(config), "start")
    assert code == 0, out
    try:
        code, out = await cli(str(config), "status")
        assert code == 0, out
        for _ in range(100):
            code, out = await cli("status", "--json", str(config))
            if json.loads(out)["ready"]:
                break
            await asyncio.sleep(0.1)
        assert json.loads(out)["summary"] == "2/2 reals up in 1 virtual service"
        code, out = await cli("--ipvs", "memory", str(config), "start")
        assert code == 0 and "already running" in out
    finally:
        code, out = await cli(str(config), "stop")
    assert code == 0 and "stopped" in out
    code, out = await cli(str(config), "status")
    assert code == 3
    text = logfile.read_text()
    assert "first round of checks applied" in text and "stopped" in text


async def test_stop_runs_fallbackcommand_stop(tmp_path: Path) -> None:
    """No real is up: `fallbackcommand start` runs; SIGTERM runs `stop` and still exits within a second."""
    dead = "127.0.0.15"
    port = free_port([dead])  # nothing listens there: every check is refused
    record = tmp_path / "fallback-calls"
    script = tmp_path / "fallback.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    script.chmod(0o755)
    config = tmp_path / "web.cf"
    config.write_text(config_text(VIP, port, [dead], head=f'fallbackcommand="{script}"'))
    notify = NotifySocket(tmp_path / "notify")
    daemon = Healthd(config, tmp_path / "run", notify, {})
    await daemon.start()
    try:
        ready = await notify.wait(lambda m: m.get("READY") == "1")
        assert ready["STATUS"] == "0/1 reals up in 1 virtual service"
        async with asyncio.timeout(10):
            while not record.exists():  # noqa: ASYNC110 - waiting for another process's file
                await asyncio.sleep(0.05)
        status = await daemon.status()
        assert status["virtuals"][0]["in_table"] and status["virtuals"][0]["reals"][0]["weight"] is None
        assert daemon.proc is not None
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.proc.wait(), 10) == 0
        assert time.monotonic() - started < 1.0
        assert record.read_text().splitlines() == [f"start {VIP}:{port} tcp", f"stop {VIP}:{port} tcp"]
    finally:
        await daemon.close()
        notify.close()


async def test_stop_signals_repeated_while_exiting_still_end_cleanly(tmp_path: Path) -> None:
    """SIGTERM again and again (an impatient operator, a second supervisor): the exit status stays 0.

    healthd takes its signal handlers off as it exits; a SIGTERM that arrives after that must not
    kill the process that is already closing down (the kernel tier's BGP lab once saw -15 here).
    """
    dead = "127.0.0.16"
    port = free_port([dead])
    config = tmp_path / "web.cf"
    config.write_text(config_text(VIP, port, [dead]))
    notify = NotifySocket(tmp_path / "notify")
    daemon = Healthd(config, tmp_path / "run", notify, {})
    await daemon.start()
    try:
        await notify.wait(lambda m: m.get("READY") == "1")
        proc = daemon.proc
        assert proc is not None
        sent = 0
        async with asyncio.timeout(10):
            while proc.returncode is None and sent < 5000:  # bounded: at most 5,000 signals, 10 s
                with contextlib.suppress(ProcessLookupError):  # os.kill: Popen.send_signal would reap it
                    os.kill(proc.pid, signal.SIGTERM)
                sent += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(proc.wait()), 0.001)
        assert sent > 1 and await proc.wait() == 0, daemon.text()
        assert "stopped" in daemon.text()
    finally:
        await daemon.close()
        notify.close()
