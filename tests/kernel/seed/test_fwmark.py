"""Experiment 3 of the seed: persistence on firewall mark 99 (`seed-fwmark-persistent.cf`).

The director marks TCP to the VIP on ports 80 and 443 with 99 (nftables here;
the README gives the seed's iptables lines too); healthd keeps `FWM 99 rr
persistent 360`. Each client must stick to one real on both ports, and with rr
the second client's template lands on the other real: the seed's own test
("different hosts, each always sees the same page").
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel.seed.director import STARTUP, Healthd, dests_of, format_table
from tests.kernel.seed.seedconf import seed_config
from tests.kernel.seed.topology import DR_REALS, DR_VIP, SeedLab, fetch_urls, tally

# healthd starts slowly on the VM's emulated CPU (tens of seconds): more than the default 120 s per test.
pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(400)]

REQUESTS_PER_CLIENT = 10  # alternating ports 80 and 443
SERVICE = "FWM 99 rr persistent 360"
SEED_ADDRESSES = {
    "172.17.111.111": DR_VIP,
    "172.17.111.234": DR_REALS["real1"],
    "172.17.111.222": DR_REALS["real2"],
}

MARK_RULES = f"""
table ip mangle {{
    chain prerouting {{
        type filter hook prerouting priority mangle; policy accept;
        ip daddr {DR_VIP} tcp dport {{ 80, 443 }} counter meta mark set 99
    }}
}}
"""


def test_fwmark_99_keeps_each_client_on_one_real_across_both_ports(
    dr: SeedLab, tmp_path: Path, report: Callable[..., None]
) -> None:
    seed = dr
    rules = tmp_path / "mark.nft"
    rules.write_text(MARK_RULES)
    seed.director.run("nft", "-f", str(rules))
    config = tmp_path / "seed-fwmark-persistent.cf"
    # The seed's mangle lines sit in the file's comments; they move with the VIP too.
    config.write_text(seed_config("seed-fwmark-persistent.cf", SEED_ADDRESSES))
    with Healthd(seed.director, config) as healthd:
        table = healthd.wait_table(
            lambda t: len(dests_of(t, SERVICE)) == 2, STARTUP, "FWM 99 with both reals"
        )
        ready = time.monotonic() - healthd.started
        assert {(d.forward, d.weight) for d in dests_of(table, SERVICE).values()} == {("Route", 1)}, table

        seen = {}
        for client in seed.clients:
            ports = [80, 443] * (REQUESTS_PER_CLIENT // 2)
            seen[client.name] = fetch_urls(client, [f"http://{seed.vip}:{port}/index.html" for port in ports])
        counters = seed.director.run("nft", "list", "chain", "ip", "mangle", "prerouting")
    first, second = seen.values()
    assert len(set(first)) == 1 and first[0] in ("real1", "real2"), first
    assert len(set(second)) == 1 and second[0] in ("real1", "real2"), second
    assert first[0] != second[0], "rr should have given the second client's template to the other real"
    marked = re.search(r"counter packets (\d+) .* meta mark set 0x00000063", counters)
    assert marked and int(marked[1]) >= 2 * REQUESTS_PER_CLIENT, counters
    report(
        *(
            f"{name.rpartition('-')[2]}: {tally(bodies)} over ports 80 and 443"
            for name, bodies in seen.items()
        ),
        f"packets marked 99 by nft: {marked[1]}",
        f"healthd start to both reals in the table: {ready:.1f} s",
        *format_table(table),
    )
