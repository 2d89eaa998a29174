"""Experiment 1 of the seed: LVS-NAT with healthd keeping the table (`seed-nat.cf`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel.seed.director import STARTUP, Healthd, dests_of, format_table, read_table
from tests.kernel.seed.seedconf import seed_config
from tests.kernel.seed.topology import NAT_REALS, NAT_VIP, SeedLab, alternates, fetch, tally

# healthd starts slowly on the VM's emulated CPU (tens of seconds): more than the default 120 s per test.
pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(400)]

REQUESTS = 8
SERVICE = f"TCP {NAT_VIP}:80 wrr"


def test_nat_wrr_alternates_between_the_two_sites(
    nat: SeedLab, tmp_path: Path, report: Callable[..., None]
) -> None:
    seed = nat
    config = tmp_path / "seed-nat.cf"
    config.write_text(
        seed_config(
            "seed-nat.cf",
            {
                "172.17.111.117": NAT_VIP,
                "192.168.199.146": NAT_REALS["real1"],
                "192.168.199.143": NAT_REALS["real2"],
            },
        )
    )
    with Healthd(seed.director, config) as healthd:
        table = healthd.wait_table(
            lambda t: len(dests_of(t, SERVICE)) == 2, STARTUP, "NAT service with both reals"
        )
        ready = time.monotonic() - healthd.started
        dests = dests_of(table, SERVICE)
        assert {(d.forward, d.weight) for d in dests.values()} == {("Masq", 1)}, table
        assert set(dests) == set(NAT_REALS.values())

        bodies = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)
    assert sorted(bodies) == sorted(["real1", "real2"] * (REQUESTS // 2)), bodies
    assert alternates(bodies), bodies
    # Stopped with SIGTERM, healthd exits cleanly and (cleanstop=yes, the default) removes its service.
    assert healthd.exit_status == 0, healthd.log_tail()
    assert read_table(seed.director) == {}, read_table(seed.director)
    report(
        f"requests per real: {tally(bodies)} (sequence {' '.join(bodies)})",
        f"healthd start to both reals in the table: {ready:.1f} s",
        *format_table(table),
        "healthd stopped (SIGTERM): exit 0, service removed (cleanstop=yes)",
    )
