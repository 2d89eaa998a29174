"""/metrics and /status.json against real web servers on loopback, the in-memory IPVS table behind them.

The metrics are read with prometheus_client's own parser and compared with the
table healthd applied and with the state its checks report, while a real goes down
and comes back.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from healthd.daemon import control
from tests.integration.daemon.helpers import WebServer, config_text, web_servers

from .common import daemon_with_http, get, per_real, scrape, table_weights, until

VIP = "127.0.0.100"
ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


@pytest.fixture
async def reals() -> AsyncIterator[list[WebServer]]:
    async with web_servers(ADDRESSES) as servers:
        yield servers


async def test_metrics_follow_the_reals_and_the_table(tmp_path: Path, reals: list[WebServer]) -> None:
    port = reals[0].port
    text = config_text(VIP, port, ADDRESSES, head="checkinterval=0.3")
    virtual = f"TCP {VIP}:{port}"
    broken = reals[1]
    async with daemon_with_http(tmp_path, text) as (daemon, table, url):
        samples = await scrape(url)
        up = per_real(samples, "healthd_real_up")
        assert up == {(virtual, r.label): 1.0 for r in reals}
        assert per_real(samples, "healthd_real_weight") == await table_weights(table)
        assert set(per_real(samples, "healthd_real_weight").values()) == {2.0}
        last = per_real(samples, "healthd_real_last_check_timestamp_seconds")
        assert set(last) == set(up) and all(abs(t - daemon.started_at) < 60 for t in last.values())

        broken.page = "maintenance\n"

        async def broken_is_down() -> bool:
            s = await scrape(url)
            return per_real(s, "healthd_real_up").get((virtual, broken.label)) == 0.0 and bool(s)

        await until(broken_is_down, f"{broken.label} down in /metrics")
        samples = await scrape(url)
        weights = per_real(samples, "healthd_real_weight")
        assert weights == await table_weights(table)  # the table healthd applied, to the real
        assert (virtual, broken.label) not in weights and len(weights) == 2  # quiescent=no: it left the table
        transitions = per_real(samples, "healthd_real_transitions_total")
        assert transitions[(virtual, broken.label)] == 2  # unknown -> up -> down
        assert transitions[(virtual, reals[0].label)] == 1
        failed = samples["healthd_checks_total"][(("check", "negotiate"), ("result", "failed"),
                                                   ("service", "http"))]
        assert failed >= 1
        count = samples["healthd_check_duration_seconds_count"]
        assert count[(("check", "negotiate"), ("result", "failed"), ("service", "http"))] == failed

        broken.page = "ok\n"

        async def broken_is_back() -> bool:
            s = await scrape(url)
            return per_real(s, "healthd_real_up").get((virtual, broken.label)) == 1.0

        await until(broken_is_back, f"{broken.label} up again in /metrics")
        samples = await scrape(url)
        assert per_real(samples, "healthd_real_weight") == await table_weights(table)
        assert per_real(samples, "healthd_real_weight")[(virtual, broken.label)] == 2.0

        # the process: scheduler, IPVS operations, reconciler, configuration
        assert samples["healthd_scheduler_lateness_seconds_count"][()] > 10
        ops = {dict(k)["op"]: v for k, v in samples["healthd_ipvs_operations_total"].items()}
        assert ops["add_service"] == 1 and ops["add_dest"] >= 4 and ops["delete_dest"] >= 1
        assert samples["healthd_reconciler_syncs_total"][(("result", "ok"),)] >= 3
        assert samples["healthd_reconciler_sync_duration_seconds_count"][()] >= 3
        assert samples["healthd_config_mtime_seconds"][()] == os.stat(tmp_path / "web.cf").st_mtime
        assert samples["healthd_config_reloads_total"][(("result", "ok"),)] == 0
        assert samples["healthd_virtual_fallback_active"][(("virtual", virtual),)] == 0


async def test_status_json_is_what_healthd_status_json_gives(tmp_path: Path, reals: list[WebServer]) -> None:
    port = reals[0].port
    async with daemon_with_http(tmp_path, config_text(VIP, port, ADDRESSES, head="checkinterval=0.3")) as (
        daemon, _table, url,
    ):
        reals[2].page = "gone\n"

        async def down() -> dict | None:
            status, kind, body = await get(url + "status.json")
            assert status == 200 and kind == "application/json"
            doc = json.loads(body)
            states = {r["real"]: r["state"] for v in doc["virtuals"] for r in v["reals"]}
            return doc if states[reals[2].label] == "down" else None

        web = await until(down, "the broken real down in /status.json")
        assert daemon.control_path is not None
        cli = await asyncio.to_thread(control.query, daemon.control_path)
        assert set(web) == set(cli)
        assert web["transitions"][0]["real"] == reals[2].label and web["transitions"][0]["new"] == "down"

        def table(doc: dict) -> list:
            return [(v["service"], v["scheduler"], [(r["dest"], r["state"], r["weight"]) for r in v["reals"]])
                    for v in doc["virtuals"]]

        assert table(web) == table(cli)
        assert web["summary"] == cli["summary"] == "2/3 reals up in 1 virtual service"


async def test_the_server_is_read_only_and_small(tmp_path: Path, reals: list[WebServer]) -> None:
    import aiohttp

    port = reals[0].port
    text = config_text(VIP, port, ADDRESSES)
    async with daemon_with_http(tmp_path, text) as (_daemon, _table, url), aiohttp.ClientSession() as session:
        async with session.post(url + "status.json", data=b"x") as response:
            assert response.status == 405 and response.headers["Allow"] == "GET, HEAD"
        async with session.get(url + "admin") as response:
            assert response.status == 404
        async with session.get(url) as response:
            page = await response.text()
        assert response.status == 200 and "status.json" in page
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
