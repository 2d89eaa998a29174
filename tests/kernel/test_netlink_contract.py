"""The shared IPVS contract suite against the real kernel table (netlink driver), checked with ipvsadm too."""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from healthd.ipvs.model import AddDest, AddService
from healthd.ipvs.netlink import NetlinkTable
from tests.kernel.conftest import ipvsadm
from tests.kernel.ipvsadm_view import save_lines
from tests.unit.ipvs.contract import DESTS, SERVICES, ContractSuite


class TestKernelTable(ContractSuite):
    """Every contract test against the kernel; after each, the table must read the same through ipvsadm."""

    @pytest.fixture
    async def table(self, table: NetlinkTable) -> AsyncIterator[NetlinkTable]:
        yield table
        saved = sorted(line for line in ipvsadm("-S", "-n").splitlines() if line)
        assert saved == save_lines(await table.dump())


async def test_dump_agrees_with_ipvsadm_save(table: Any) -> None:
    """What the driver dumps is what ipvsadm sees: compare against `ipvsadm -S -n` line by line."""
    seen = set()
    for svc in SERVICES:
        if svc.key not in seen:
            seen.add(svc.key)
            await table.apply(AddService(svc))
    for key, dest in DESTS:
        await table.apply(AddDest(key, dest))
    saved = ipvsadm("-S", "-n").splitlines()
    dumped = await table.dump()
    assert len([line for line in saved if line.startswith("-A")]) == len(dumped)
    reals = sum(len(e.dests) for e in dumped.values())
    assert len([line for line in saved if line.startswith("-a")]) == reals
    assert "-A -u [2001:db8::1]:53 -s sh -p 600 -M 64 -o -b sh-fallback,sh-port" in saved
    assert "-A -f 7 -6 -s wlc -p 60 -M 96" in saved
    assert "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 3" in saved
    # -S leaves out thresholds: read them from the listing
    thresholds = [line.split() for line in ipvsadm("-Ln", "--thresholds").splitlines()]
    assert ["->", "10.0.1.1:80", "100", "10", "0", "0"] in thresholds
