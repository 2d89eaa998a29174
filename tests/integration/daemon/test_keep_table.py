"""A package upgrade's restart leaves the table alone: with /run/healthd.keep-table, stop skips cleanstop.

In-process, the real Daemon and engine on the in-memory table (checktype=on: no traffic needed).
The systemd tier proves the same through `dpkg -i` of a newer package under a real systemd.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from pathlib import Path

import pytest

from healthd.config import load
from healthd.daemon import pidfile
from healthd.daemon.lifecycle import Daemon
from healthd.daemon.systemd import Notifier
from healthd.daemon.wiring import build_engine
from healthd.ipvs.memory import MemoryTable

CONFIG = "checkinterval=1\nvirtual=127.0.0.100:80\n\treal=127.0.1.1:80 masq\n\tchecktype=on\n"


async def run_and_stop(path: Path, table: MemoryTable) -> None:
    daemon = Daemon(load(str(path)), engine_factory=functools.partial(build_engine, backend=table),
                    loader=load, notifier=Notifier({}), ipvs_kind="memory", watch_interval=60)
    task = asyncio.create_task(daemon.run())
    async with asyncio.timeout(15):
        await daemon.ready.wait()
    assert len(await table.dump()) == 1
    daemon.request_stop()
    async with asyncio.timeout(10):
        assert await task == 0


@pytest.fixture
def rundir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HEALTHD_RUNDIR", str(tmp_path))
    (tmp_path / "lvs.cf").write_text(CONFIG)
    return tmp_path


async def test_stop_honours_cleanstop_without_the_marker(rundir: Path) -> None:
    table = MemoryTable()
    await run_and_stop(rundir / "lvs.cf", table)
    assert await table.dump() == {}


async def test_the_marker_keeps_the_table(rundir: Path) -> None:
    pidfile.keep_table_path().touch()
    table = MemoryTable()
    await run_and_stop(rundir / "lvs.cf", table)
    assert len(await table.dump()) == 1


async def test_a_stale_marker_is_ignored(rundir: Path) -> None:
    marker = pidfile.keep_table_path()
    marker.touch()
    old = time.time() - pidfile.KEEP_TABLE_MAX_AGE - 60
    os.utime(marker, (old, old))
    table = MemoryTable()
    await run_and_stop(rundir / "lvs.cf", table)
    assert await table.dump() == {}
