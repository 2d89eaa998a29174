"""Fixtures of the seed lab experiments: the NAT and DR labs, built once per session.

Building a lab costs seconds in the VM (its CPU is emulated), so each lab is
built once and every test gets it back in its initial state: every ok.html
saying ok, an empty IPVS table, no firewall rules on the director.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kernel.seed.topology import Lab, SeedLab, build_dr, build_nat

# Each experiment's short report (requests per real, seconds to remove and restore) goes
# through tests/kernel/conftest.py's `report`, printed again at the end of the session.


@pytest.fixture(scope="session")
def nat_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeedLab]:
    lab = Lab(tmp_path_factory.mktemp("nat-lab"))
    try:
        yield build_nat(lab)
    finally:
        lab.close()


@pytest.fixture(scope="session")
def dr_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeedLab]:
    """Two clients, the director, real1-real3 (real3 for the reload step) and the fallback "sorry" server."""
    lab = Lab(tmp_path_factory.mktemp("dr-lab"))
    try:
        yield build_dr(lab, ("real1", "real2", "real3"), clients=2, ports=(80, 443), sorry=True)
    finally:
        lab.close()


@pytest.fixture
def nat(nat_lab: SeedLab) -> Iterator[SeedLab]:
    nat_lab.reset()
    yield nat_lab
    nat_lab.reset()


@pytest.fixture
def dr(dr_lab: SeedLab) -> Iterator[SeedLab]:
    dr_lab.reset()
    yield dr_lab
    dr_lab.reset()
