"""Experiment 1 of the seed: LVS-NAT with healthd keeping the table (`seed-nat.cf`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel.seed.alternation import check_alternation
from tests.kernel.seed.seedconf import seed_config
from tests.kernel.seed.topology import NAT_REALS, NAT_VIP, SeedLab

# healthd starts slowly on the VM's emulated CPU (tens of seconds): more than the default 120 s per test.
pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(400)]

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
    reals = set(NAT_REALS.values())
    check_alternation(seed, config, SERVICE, "Masq", reals, "NAT service with both reals", report)
