"""/metrics says what the kernel has: healthd_real_weight equals the weights `ipvsadm -Ln` lists.

healthd runs (in-process, netlink backend) against web servers on the VM's loopback, with
--http on loopback; a real then fails in a quiescent virtual (weight 0, still listed) and in
a non-quiescent one (gone), and both views must agree every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from healthd.config import load
from healthd.daemon.lifecycle import Daemon
from healthd.daemon.systemd import Notifier
from healthd.daemon.wiring import build_engine
from healthd.demo import free_port
from healthd.ipvs.netlink import NetlinkTable
from tests.integration.daemon.helpers import WebServer, web_servers
from tests.integration.web.common import per_real, scrape
from tests.kernel.conftest import ipvsadm

ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def ipvsadm_weights() -> dict[tuple[str, str], float]:
    """{(virtual, real): weight} from `ipvsadm -Ln` (virtual as "TCP 10.0.0.1:80" or "FWM 7")."""
    out: dict[tuple[str, str], float] = {}
    virtual = ""
    for line in ipvsadm("-Ln").splitlines():
        words = line.split()
        if words[:1] in (["TCP"], ["UDP"], ["FWM"], ["SCTP"]):
            virtual = f"{words[0]} {words[1]}"
        elif words[:1] == ["->"] and virtual:
            out[virtual, words[1]] = float(words[3])
    return out


def config(port: int) -> str:
    reals = "\n".join(f"\treal={a}:{port} masq {w}" for a, w in zip(ADDRESSES, (1, 2, 3), strict=True))
    # failurecount=2: under TCG emulation a single check can miss its deadline; one miss must not flap
    return (f"checkinterval=0.5\nchecktimeout=3\nnegotiatetimeout=3\nfailurecount=2\n"
            f"virtual=10.0.0.1:80\n{reals}\n\tservice=http\n\trequest=\"ok.html\"\n\treceive=\"ok\"\n"
            "\tquiescent=yes\n"
            f"virtual=7\n\treal=127.0.0.2 gate 5\n\treal=127.0.0.3 gate 6\n\tcheckport={port}\n"
            "\tservice=http\n\trequest=\"ok.html\"\n\treceive=\"ok\"\n\tquiescent=no\n")


@pytest.fixture
async def reals() -> AsyncIterator[list[WebServer]]:
    await asyncio.to_thread(subprocess.run, ["ip", "link", "set", "lo", "up"], check=True)
    async with web_servers(ADDRESSES) as servers:
        yield servers


@contextlib.asynccontextmanager
async def healthd(tmp_path: Path, text: str) -> AsyncIterator[tuple[Daemon, str]]:
    path = tmp_path / "kernel.cf"
    path.write_text(text)
    backend = await NetlinkTable.open()
    await backend.flush()
    daemon = Daemon(load(str(path)), engine_factory=functools.partial(build_engine, backend=backend),
                    loader=load,
                    notifier=Notifier({}), ipvs_kind="netlink", http=("127.0.0.1", free_port(["127.0.0.1"])))
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.ready.wait(), 20)
        assert daemon.web is not None
        yield daemon, daemon.web.url
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
        await backend.flush()
        await backend.close()


async def agree(daemon: Daemon, url: str, want: dict[tuple[str, str], float], limit: float = 30.0
                ) -> dict[Any, float]:
    """Wait until /metrics shows `want` twice, a fresh build apart, with `ipvsadm -Ln` read in between:
    it must list the same weights (a scrape is rebuilt at most once a second)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        before = per_real(await scrape(url), "healthd_real_weight")
        kernel = await asyncio.to_thread(ipvsadm_weights)
        await asyncio.sleep(1.1)
        after = per_real(await scrape(url), "healthd_real_weight")
        if before == after == want:
            assert kernel == want
            return kernel
        details = {r["dest"]: r["last_detail"]
                   for v in daemon.status_snapshot()["virtuals"] for r in v["reals"]}
        assert loop.time() < deadline, f"/metrics {after}, expected {want}; last checks: {details}"


async def test_weight_metric_equals_ipvsadm(tmp_path: Path, reals: list[WebServer]) -> None:
    port = reals[0].port
    tcp, fwm = "TCP 10.0.0.1:80", "FWM 7"
    async with healthd(tmp_path, config(port)) as (daemon, url):
        labels = [r.label for r in reals]
        all_up = {(tcp, labels[0]): 1.0, (tcp, labels[1]): 2.0, (tcp, labels[2]): 3.0,
                  (fwm, "127.0.0.2:0"): 5.0, (fwm, "127.0.0.3:0"): 6.0}
        await agree(daemon, url, all_up)

        reals[1].page = "maintenance\n"  # 127.0.0.3: quiesced in the TCP service, removed from the FWM one
        quiesced = {**all_up, (tcp, labels[1]): 0.0}
        del quiesced[fwm, "127.0.0.3:0"]
        await agree(daemon, url, quiesced)

        reals[1].page = "ok\n"
        await agree(daemon, url, all_up)
