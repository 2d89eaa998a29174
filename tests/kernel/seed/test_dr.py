"""Experiment 2 of the seed: LVS-DR with healthd keeping the table (`seed-dr.cf`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel.seed.alternation import check_alternation
from tests.kernel.seed.seedconf import seed_config
from tests.kernel.seed.topology import DR_REALS, DR_VIP, SeedLab

# healthd starts slowly on the VM's emulated CPU (tens of seconds): more than the default 120 s per test.
pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(400)]

SERVICE = f"TCP {DR_VIP}:80 wrr"
SEED_ADDRESSES = {
    "172.17.111.111": DR_VIP,
    "172.17.111.234": DR_REALS["real1"],
    "172.17.111.222": DR_REALS["real2"],
}


def test_dr_wrr_alternates_between_the_two_sites(
    dr: SeedLab, tmp_path: Path, report: Callable[..., None]
) -> None:
    seed = dr
    config = tmp_path / "seed-dr.cf"
    config.write_text(seed_config("seed-dr.cf", SEED_ADDRESSES))
    reals = {DR_REALS["real1"], DR_REALS["real2"]}
    check_alternation(seed, config, SERVICE, "Route", reals, "DR service with both reals", report)
