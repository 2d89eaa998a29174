"""A restarted healthd adopts the kernel table it finds: no real is removed and re-added (issue 5).

The proof is the kernel's own: IPVS keeps cumulative counters (connections,
packets) per service and per destination, and a destination that is removed
and added again starts over from zero. So the NAT lab's table is given
traffic, healthd (cleanstop=no) is stopped and started again, and the counters
must have carried over, while every `ipvsadm -Ln` read during the restart shows
both reals with their weights.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kernel.seed.director import STARTUP, Healthd, Table, dests_of, format_table, read_table
from tests.kernel.seed.seedconf import seed_config, set_global
from tests.kernel.seed.topology import NAT_REALS, NAT_VIP, Host, SeedLab, fetch, tally, wait_for

# two healthd starts on the VM's emulated CPU (tens of seconds each)
pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(500)]

REQUESTS = 6
SERVICE = f"TCP {NAT_VIP}:80 wrr"
FIRST_ROUND = "first round of checks applied"
STATS_LAG = 20  # seconds for the counters to show traffic (the kernel updates them every 2 s)
WEIGHTS = {rip: ("Masq", 1) for rip in NAT_REALS.values()}


@dataclass(frozen=True)
class Stats:
    """The cumulative counters `ipvsadm -Ln --stats --exact` prints for a service or a destination."""

    conns: int
    inpkts: int
    outpkts: int


def read_stats(director: Host) -> dict[str, Stats]:
    """Counters by "VIP:PORT" for the service and by "RIP:PORT" for each destination."""
    stats = {}
    for line in director.run("ipvsadm", "-Ln", "--stats", "--exact").splitlines():
        match = re.match(r"\s*(?:TCP|UDP|SCTP|FWM|->)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\d+\s*$", line)
        if match:
            address, conns, inpkts, outpkts = match.groups()
            stats[address] = Stats(int(conns), int(inpkts), int(outpkts))
    return stats


def wait_stats(director: Host, predicate: Callable[[dict[str, Stats]], bool], what: str) -> dict[str, Stats]:
    """Poll the counters until `predicate` holds: the kernel (6.1) folds them in every 2 s, not at once."""
    last: list[dict[str, Stats]] = [{}]

    def probe() -> bool:
        last[0] = read_stats(director)
        return predicate(last[0])

    assert wait_for(probe, STATS_LAG, 0.5), f"no {what} within {STATS_LAG} s: {last[0]}"
    return last[0]


def both_reals(table: Table) -> bool:
    return {a: (d.forward, d.weight) for a, d in dests_of(table, SERVICE).items()} == WEIGHTS


def test_restarted_healthd_adopts_the_table_without_removing_a_real(
    nat: SeedLab, tmp_path: Path, report: Callable[..., None]
) -> None:
    seed = nat
    config = tmp_path / "seed-nat.cf"
    text = seed_config(
        "seed-nat.cf",
        {
            "172.17.111.117": NAT_VIP,
            "192.168.199.146": NAT_REALS["real1"],
            "192.168.199.143": NAT_REALS["real2"],
        },
    )
    config.write_text(set_global(text, "cleanstop", "no"))
    keys = [f"{NAT_VIP}:80", *(f"{rip}:80" for rip in NAT_REALS.values())]

    with Healthd(seed.director, config) as first:
        first.wait_table(both_reals, STARTUP, "NAT service with both reals at weight 1")
        bodies = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)
        assert sorted(bodies) == sorted(["real1", "real2"] * (REQUESTS // 2)), bodies
    assert first.exit_status == 0, first.log_tail()
    left = read_table(seed.director)
    assert both_reals(left), f"cleanstop=no: the table must stay after SIGTERM, got {left}"
    vip, reals = keys[0], keys[1:]
    before = wait_stats(
        seed.director,
        lambda s: s[vip].conns == REQUESTS and sum(s[r].conns for r in reals) == REQUESTS,
        f"{REQUESTS} connections counted",
    )
    assert all(before[key].conns > 0 and before[key].inpkts > 0 for key in keys), before

    second = Healthd(seed.director, config)
    with second:
        # Every read from the start to the end of the first round of checks: no gap, no weight change.
        reads = 0
        while FIRST_ROUND not in second.log.read_text(errors="replace"):
            table = second.table()
            reads += 1
            assert both_reals(table), (
                f"read {reads} during the restart lacks a real or changed a weight: {table}\n"
                f"{second.log_tail()}"
            )
            assert time.monotonic() - second.started < STARTUP, (
                f"no '{FIRST_ROUND}' within {STARTUP} s:\n{second.log_tail()}"
            )
            time.sleep(0.1)
        ready = time.monotonic() - second.started
        after_restart = read_stats(seed.director)
        assert both_reals(second.table()), second.log_tail()
        # The adopted table still serves, and its counters keep counting from where they were.
        more = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)
        assert sorted(more) == sorted(["real1", "real2"] * (REQUESTS // 2)), more
        after_traffic = wait_stats(
            seed.director,
            lambda s: (
                s[vip].conns >= before[vip].conns + REQUESTS
                and sum(s[r].conns for r in reals) >= sum(before[r].conns for r in reals) + REQUESTS
            ),
            f"{REQUESTS} more connections counted",
        )
    log = second.log.read_text(errors="replace")

    for key in keys:
        # a destination (or service) deleted and re-added would count from 0 again
        assert after_restart[key].conns == before[key].conns, (key, before, after_restart)
        assert after_restart[key].inpkts >= before[key].inpkts, (key, before, after_restart)
        assert after_traffic[key].conns > after_restart[key].conns, (key, after_restart, after_traffic)
    assert after_traffic[vip].conns == before[vip].conns + REQUESTS, (before, after_traffic)
    assert reads >= 1, "no table read during the restart"  # the log cannot say it at the first look
    assert "IPVS changed under us" not in log and "cannot update the IPVS table" not in log, log
    assert second.exit_status == 0, second.log_tail()
    report(
        f"restart with cleanstop=no: {reads} ipvsadm -Ln reads until the new healthd's first round "
        f"({ready:.1f} s after its start), both reals at weight 1 in every one",
        *(
            f"{key}: conns/inpkts before {before[key].conns}/{before[key].inpkts}, "
            f"after restart {after_restart[key].conns}/{after_restart[key].inpkts}, "
            f"after {REQUESTS} more requests {after_traffic[key].conns}/{after_traffic[key].inpkts}"
            for key in keys
        ),
        f"requests per real before {tally(bodies)}, after {tally(more)}",
        *format_table(left),
    )
