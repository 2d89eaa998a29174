"""Drift made by hand with ipvsadm is repaired by a resync; services healthd does not manage stay."""

from typing import Any

from healthd.ipvs.model import Dest, Forward, Service
from healthd.ipvs.reconcile import Reconciler
from tests.kernel.conftest import ipvsadm
from tests.unit.ipvs.contract import TCP, entry


async def test_resync_repairs_ipvsadm_edits(table: Any) -> None:
    desired = {TCP: entry(Service(TCP, "wrr", persistent=120),
                          Dest("10.0.1.1", 80, Forward.MASQ, 3), Dest("10.0.1.2", 80, weight=0, readd=False),
                          Dest("10.0.1.3", 80, Forward.GATE, 1))}
    rec = Reconciler(table)
    await rec.sync(desired, {TCP})
    before = ipvsadm("-Ln")
    ipvsadm("-E", "-t", "10.0.0.1:80", "-s", "rr")  # scheduler changed, persistence dropped
    ipvsadm("-e", "-t", "10.0.0.1:80", "-r", "10.0.1.1:80", "-g", "-w", "9")
    ipvsadm("-d", "-t", "10.0.0.1:80", "-r", "10.0.1.3:80")
    ipvsadm("-d", "-t", "10.0.0.1:80", "-r", "10.0.1.2:80")  # quiesced, readdquiescent=no
    ipvsadm("-A", "-t", "10.0.0.50:25", "-s", "lc")  # someone else's service
    await rec.resync()
    assert sorted(type(op).__name__ for op in rec.last_ops) == ["AddDest", "EditDest", "EditService"]
    after = ipvsadm("-Ln")
    assert "TCP  10.0.0.50:25 lc" in after
    assert after.replace("TCP  10.0.0.50:25 lc\n", "") == before.replace(
        "  -> 10.0.1.2:80                  Route   0      0          0         \n", "")
