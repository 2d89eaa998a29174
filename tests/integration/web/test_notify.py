"""notifycommand against real web servers on loopback: every state change runs the hook, a hanging hook
holds back nothing else and is killed (its whole process group) at its timeout."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from healthd.daemon.notify import NotifyHooks
from tests.integration.daemon.helpers import WebServer, config_text, web_servers

from .common import daemon_with_http, table_weights, until

VIP = "127.0.0.100"
ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
HOOK_TIMEOUT = 4.0

HOOK = """#!/bin/sh
# $1 virtual, $2 real, $3 old state, $4 new state
echo "$$ $*" >> {log}
case "$2" in
    {hang}) sleep 1000 & echo $! > {child}; wait ;;
esac
"""


@pytest.fixture
async def reals() -> AsyncIterator[list[WebServer]]:
    async with web_servers(ADDRESSES) as servers:
        yield servers


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose: the runner reaped or will reap it
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


async def test_every_change_runs_the_hook_and_a_hanging_one_delays_nothing(
        tmp_path: Path, reals: list[WebServer]) -> None:
    port = reals[0].port
    hanging, other = reals[0], reals[1]
    log, child = tmp_path / "hook.log", tmp_path / "child.pid"
    hook = tmp_path / "hook.sh"
    hook.write_text(HOOK.format(log=log, hang=hanging.label, child=child))
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    text = config_text(VIP, port, ADDRESSES, head=f"checkinterval=0.3\nnotifycommand={hook}")
    virtual = f"{VIP}:{port}"

    def lines() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    hooks = NotifyHooks(timeout=HOOK_TIMEOUT)
    async with daemon_with_http(tmp_path, text, notify=hooks) as (daemon, table, _url):
        # the first verdicts: unknown -> up, once per real
        async def three() -> bool:
            return len(lines()) >= 3

        await until(three, "three first hooks", limit=5)
        firsts = sorted(line.split(" ", 1)[1] for line in lines()[:3])
        assert firsts == sorted(f"{virtual} {r.label} unknown up" for r in reals)
        started = asyncio.get_running_loop().time()

        async def child_started() -> bool:
            return child.exists() and child.read_text().strip() != ""

        await until(child_started, "the hanging hook's child", limit=3, step=0.05)
        sleeper = int(child.read_text())
        assert alive(sleeper)  # the hook of the hanging real is still running ...

        other.page = "maintenance\n"  # ... while another real fails

        async def other_down() -> bool:
            return any(line.endswith(f"{other.label} up down") for line in lines())

        await until(other_down, "the other real's hook", limit=3, step=0.05)
        took = asyncio.get_running_loop().time() - started
        assert took < HOOK_TIMEOUT - 1  # it did not wait for the hanging hook
        assert alive(sleeper)

        async def left_the_table() -> bool:
            weights = await table_weights(table)
            return (f"TCP {virtual}", other.label) not in weights and len(weights) == 2

        await until(left_the_table, "the table moving on", limit=2, step=0.02)

        # at its timeout the hanging hook's whole process group is killed, not just the shell
        async def killed() -> bool:
            return not alive(sleeper)

        await until(killed, "the hanging hook killed", limit=HOOK_TIMEOUT + 4, step=0.1)
        assert any("still running after" in (r.error or "") for r in hooks.results)

        other.page = "ok\n"

        async def other_up() -> bool:
            return any(line.endswith(f"{other.label} down up") for line in lines())

        await until(other_up, "the hook for the real coming back", limit=5)
        stats = daemon.status_snapshot()["scheduler"]
        assert stats["ticks_shed"] == 0 and stats["lateness_p99"] < 0.1
