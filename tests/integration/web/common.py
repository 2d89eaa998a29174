"""Shared parts of the web tests: an in-process daemon with --http, scraping and parsing /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from healthd.config import load
from healthd.daemon.lifecycle import Daemon
from healthd.daemon.notify import NotifyHooks
from healthd.daemon.systemd import Notifier
from healthd.daemon.wiring import build_engine
from healthd.demo import free_port
from healthd.ipvs.memory import MemoryTable

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@contextlib.asynccontextmanager
async def daemon_with_http(tmp_path: Path, text: str, notify: NotifyHooks | None = None
                           ) -> AsyncIterator[tuple[Daemon, MemoryTable, str]]:
    """A Daemon on the in-memory table, --http on a free loopback port; yields (daemon, table, url)."""
    config = tmp_path / "web.cf"
    config.write_text(text)
    table = MemoryTable()
    port = free_port(["127.0.0.1"])
    daemon = Daemon(load(str(config)), engine_factory=functools.partial(build_engine, backend=table),
                    loader=load, notifier=Notifier({}), control_path=tmp_path / "healthd.web.sock",
                    ipvs_kind="memory", http=("127.0.0.1", port), features=[notify or NotifyHooks()])
    task = asyncio.create_task(daemon.run())
    try:
        ready = asyncio.create_task(daemon.ready.wait())
        await asyncio.wait([ready, task], timeout=20, return_when=asyncio.FIRST_COMPLETED)
        assert daemon.ready.is_set(), "healthd did not finish its first round"
        assert daemon.web is not None
        yield daemon, table, daemon.web.url
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 10)


async def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of one GET on a fresh connection."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def parse(text: str) -> Samples:
    """Every sample of an exposition, by sample name and sorted label pairs (the official parser)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def scrape(url: str) -> Samples:
    status, kind, body = await get(url + "metrics")
    assert status == 200 and kind.startswith("text/plain"), (status, kind)
    return parse(body)


def per_real(samples: Samples, name: str) -> dict[tuple[str, str], float]:
    """{(virtual, real): value} of one per-real family."""
    return {(dict(k)["virtual"], dict(k)["real"]): v for k, v in samples.get(name, {}).items()}


async def table_weights(table: MemoryTable) -> dict[tuple[str, str], float]:
    """{(virtual, real): weight} as ipvsadm -Ln would list them."""
    dump = await table.dump()
    return {(str(key), str(dkey)): float(d.weight) for key, e in dump.items() for dkey, d in e.dests.items()}


async def until(predicate: Any, what: str, limit: float = 15.0, step: float = 0.2) -> Any:
    """Call the coroutine function `predicate` until it returns something true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        value = await predicate()
        if value:
            return value
        assert loop.time() < deadline, f"{what} did not happen within {limit:g} s"
        await asyncio.sleep(step)
