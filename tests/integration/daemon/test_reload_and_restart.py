"""Reload under load keeps unchanged reals in the table; a restarted healthd adopts the table it finds.

In-process: the real Daemon, engine, checks and reconciler on the in-memory
table, against real web servers on loopback. The in-memory table lives in one
process, so the restart is two daemons in turn on the same table; the kernel
tier shows the same across processes with the netlink table.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from healthd.config import load
from healthd.daemon.lifecycle import Daemon
from healthd.daemon.systemd import Notifier
from healthd.daemon.wiring import build_engine
from healthd.demo import free_port
from healthd.ipvs.memory import MemoryTable
from healthd.ipvs.model import AddDest, AddService, DeleteDest, DeleteService, EditDest, Operation, Table
from tests.integration.daemon.helpers import TinyWebFarm


class RecordingTable(MemoryTable):
    """The in-memory table, keeping every operation applied to it."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[Operation] = []

    async def apply(self, op: Operation) -> None:
        await super().apply(op)
        self.ops.append(op)


Members = dict[tuple[str, str], int]


def members(table: Table) -> Members:
    """(virtual, real address) -> weight."""
    return {(key.address, d.address): d.weight for key, e in table.items() for d in e.dests.values()}


def config(port: int, v1: list[int], v2: list[int], *, w: dict[int, int] | None = None,
           v2_scheduler: str = "wrr", head: str = "") -> str:
    weights = w or {}
    lines = ["checkinterval=1", "checktimeout=2", "quiescent=no", head, f"virtual=127.0.0.100:{port}"]
    lines += [f"\treal=127.0.1.{n}:{port} masq {weights.get(n, 1)}" for n in v1]
    lines += ["\tservice=http", '\trequest="ok.html"', '\treceive="ok"', "\tscheduler=wrr"]
    lines += [f"virtual=127.0.0.101:{port}"]
    lines += [f"\treal=127.0.1.{n}:{port} masq {weights.get(n, 1)}" for n in v2]
    lines += ["\tservice=http", '\trequest="ok.html"', '\treceive="ok"', f"\tscheduler={v2_scheduler}"]
    return "\n".join(lines) + "\n"


class Running:
    def __init__(self, path: Path, table: MemoryTable) -> None:
        self.daemon = Daemon(load(str(path)), loader=load,
                             engine_factory=functools.partial(build_engine, backend=table),
                             notifier=Notifier({}), ipvs_kind="memory", watch_interval=60)
        self.task: asyncio.Task[int] | None = None

    async def __aenter__(self) -> Daemon:
        self.task = asyncio.create_task(self.daemon.run())
        async with asyncio.timeout(15):
            await self.daemon.ready.wait()
        return self.daemon

    async def __aexit__(self, *exc: object) -> None:
        self.daemon.request_stop()
        assert self.task is not None
        async with asyncio.timeout(10):
            await self.task


async def eventually(condition: Callable[[Members], bool], table: MemoryTable, limit: float = 10.0) -> None:
    """Wait until the table satisfies `condition` (checked every 50 ms, at most `limit` seconds)."""
    async with asyncio.timeout(limit):
        while not condition(members(await table.dump())):  # noqa: ASYNC110 - bounded polling
            await asyncio.sleep(0.05)


async def sample(table: MemoryTable, into: list[dict[tuple[str, str], int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        into.append(members(await table.dump()))
        await asyncio.sleep(0.005)


def real_state(daemon: Daemon) -> dict[str, dict[str, Any]]:
    return {r["real"]: r for v in daemon.status_snapshot()["virtuals"] for r in v["reals"]}


@pytest.fixture
async def farm():
    addresses = [f"127.0.1.{n}" for n in range(1, 36)]
    port = free_port(addresses)
    web = await TinyWebFarm(addresses, port).start()
    yield web
    await web.stop()


async def test_reload_under_load_keeps_unchanged_reals(tmp_path: Path, farm: TinyWebFarm) -> None:
    port = farm.port
    base = config(port, list(range(1, 21)), list(range(21, 31)))
    # changed: 1-5 get weight 3, 16-20 leave, 31-35 join, the second virtual moves to rr.
    changed = config(port, [*range(1, 16), *range(31, 36)], list(range(21, 31)),
                     w=dict.fromkeys(range(1, 6), 3), v2_scheduler="rr")
    unchanged = [*range(6, 16), *range(21, 31)]
    path = tmp_path / "lvs.cf"
    path.write_text(base)
    table = RecordingTable()
    async with Running(path, table) as daemon:
        before = real_state(daemon)
        table.ops.clear()
        hits_before = dict(farm.hits)
        samples: list[dict[tuple[str, str], int]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(table, samples, stop))
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Four reloads by SIGHUP, back and forth, while checks keep running.
        for n, text in enumerate([changed, base, changed, base], start=1):
            path.write_text(text)
            os.kill(os.getpid(), signal.SIGHUP)
            async with asyncio.timeout(10):
                while daemon.reloads < n:  # noqa: ASYNC110 - polling the daemon under test, bounded
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.4)
        path.write_text(changed)
        assert await daemon.reload()
        # The new reals join after their first passing check.
        await eventually(lambda m: all(("127.0.0.100", f"127.0.1.{n}") in m for n in range(31, 36)), table)
        window = loop.time() - started
        stop.set()
        await sampler

        assert len(samples) > 50
        for snapshot in samples:
            for n in unchanged:
                virtual = "127.0.0.100" if n < 21 else "127.0.0.101"
                assert snapshot.get((virtual, f"127.0.1.{n}")) == 1, f"127.0.1.{n} left the table or changed"
        touched = {(op.service.address, op.dest.address) for op in table.ops if isinstance(op, AddDest)}
        touched |= {(op.service.address, op.dest.address) for op in table.ops if isinstance(op, DeleteDest)}
        assert not {address for _v, address in touched} & {f"127.0.1.{n}" for n in unchanged}
        assert not [op for op in table.ops if isinstance(op, DeleteService | AddService)]

        final = members(await table.dump())
        assert all(final[("127.0.0.100", f"127.0.1.{n}")] == 3 for n in range(1, 6))
        assert not any(("127.0.0.100", f"127.0.1.{n}") in final for n in range(16, 21))
        weight_edits = [op for op in table.ops if isinstance(op, EditDest)]
        reweighted = {f"127.0.1.{n}" for n in range(1, 6)}
        assert weight_edits and all(op.dest.address in reweighted for op in weight_edits)
        scheduler = {str(k): e.service.scheduler for k, e in (await table.dump()).items()}
        assert scheduler[f"TCP 127.0.0.101:{port}"] == "rr"

        # Health kept: same state, same `since`, no extra checks beyond the schedule.
        after = real_state(daemon)
        for n in unchanged:
            label = f"127.0.1.{n}:{port}"
            assert after[label]["state"] == "up"
            assert after[label]["since"] == before[label]["since"]
            assert farm.hits[f"127.0.1.{n}"] - hits_before[f"127.0.1.{n}"] <= window + 2


async def test_broken_reload_changes_nothing_in_the_table(tmp_path: Path, farm: TinyWebFarm) -> None:
    port = farm.port
    path = tmp_path / "lvs.cf"
    path.write_text(config(port, list(range(1, 6)), list(range(21, 24))))
    table = RecordingTable()
    async with Running(path, table) as daemon:
        before = members(await table.dump())
        table.ops.clear()
        path.write_text("virtual=127.0.0.100\n\treal=127.0.1.1:80 gate\nchecktimeout=-1\n")
        assert await daemon.reload() is False
        await asyncio.sleep(1.5)  # a full check interval under the old config
        assert table.ops == []
        assert members(await table.dump()) == before
        assert daemon.reload_error and all(e.startswith(f"{path}:") for e in daemon.reload_error)
        # The old configuration still works: a failing real still leaves the table.
        farm.pages["127.0.1.2"] = "down\n"
        await eventually(lambda m: ("127.0.0.100", "127.0.1.2") not in m, table)


async def test_restart_adopts_the_table(tmp_path: Path, farm: TinyWebFarm) -> None:
    """cleanstop=no: the next healthd finds a full table and leaves every entry where it is."""
    port = farm.port
    path = tmp_path / "lvs.cf"
    path.write_text(config(port, list(range(1, 11)), list(range(21, 26)), head="cleanstop=no"))
    table = RecordingTable()
    async with Running(path, table):
        pass
    full = members(await table.dump())
    assert len(full) == 15  # cleanstop=no left the table as it was

    table.ops.clear()
    samples: list[dict[tuple[str, str], int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(table, samples, stop))
    async with Running(path, table):
        await asyncio.sleep(1.2)  # a full check round under the second daemon
        stop.set()
        await sampler
        assert all(snapshot == full for snapshot in samples)
        assert table.ops == []  # nothing removed and re-added, nothing even edited
        farm.pages["127.0.1.3"] = "down\n"  # and the adopted table is managed
        await eventually(lambda m: ("127.0.0.100", "127.0.1.3") not in m, table)
    assert [op for op in table.ops if not isinstance(op, DeleteDest)] == []
