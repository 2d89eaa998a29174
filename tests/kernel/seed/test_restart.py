"""A restarted healthd adopts the kernel table it finds: no real is removed and re-added (issue 5).

The NAT lab's table is given traffic, healthd (cleanstop=no) is stopped and
started again, and three views of the kernel must agree that nothing was taken
out and put back:
- kprobes on IPVS's own add/delete functions count no call during the restart
  (the same probes count the first healthd's additions, so they do see healthd);
- the service's cumulative counters carry over (a deleted service is freed; a
  new one counts from 0). A destination's counters carry over too, but they are
  no proof on their own: the kernel parks a deleted destination in its "trash"
  and gives it back, counters and all, when the same one is added again;
- every `ipvsadm -Ln` read until the new healthd's first round shows both reals
  with their weights.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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
STATS_TICK = 2.5  # a little more than the kernel's 2 s between folds
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


TRACING = Path("/sys/kernel/tracing")


def _append(path: Path, line: str) -> None:
    # O_APPEND without Python's seek to the end, which tracefs refuses
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class KernelCalls:
    """Counts calls of IPVS's table-changing kernel functions with kprobes (the kernel's own tracing)."""

    GROUP = "healthd_adopt"
    FUNCTIONS: ClassVar[dict[str, str]] = {
        "adopt_add_service": "ip_vs_add_service",
        "adopt_add_dest": "ip_vs_add_dest",
        "adopt_del_dest": "__ip_vs_del_dest",  # also reached when a whole service is deleted
        "adopt_edit_dest": "ip_vs_edit_dest",
        "adopt_writes": "ip_vs_genl_set_cmd",  # every netlink command that changes IPVS
    }

    def __init__(self) -> None:
        self.added: list[str] = []

    def __enter__(self) -> KernelCalls:
        if not (TRACING / "kprobe_events").exists():
            subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=True, capture_output=True)
        try:
            for name, function in self.FUNCTIONS.items():
                _append(TRACING / "kprobe_events", f"p:{self.GROUP}/{name} {function}\n")
                self.added.append(name)
            (TRACING / "events" / self.GROUP / "enable").write_text("1\n")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        enable = TRACING / "events" / self.GROUP / "enable"
        if enable.exists():
            enable.write_text("0\n")
        for name in self.added:
            _append(TRACING / "kprobe_events", f"-:{self.GROUP}/{name}\n")

    def counts(self) -> dict[str, int]:
        """Calls so far, by short name (add_service, add_dest, del_dest, edit_dest, writes)."""
        hits = {}
        for line in (TRACING / "kprobe_profile").read_text().splitlines():
            words = line.split()
            if len(words) == 3 and words[0] in self.FUNCTIONS:
                hits[words[0].removeprefix("adopt_")] = int(words[1])
        assert len(hits) == len(self.FUNCTIONS), f"kprobe_profile lacks our probes: {hits}"
        return hits


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

    with KernelCalls() as calls, Healthd(seed.director, config) as first:
        first.wait_table(both_reals, STARTUP, "NAT service with both reals at weight 1")
        serving = calls.counts()
        bodies = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)
        assert sorted(bodies) == sorted(["real1", "real2"] * (REQUESTS // 2)), bodies
        first.stop()
        assert first.exit_status == 0, first.log_tail()
        left = read_table(seed.director)
        assert both_reals(left), f"cleanstop=no: the table must stay after SIGTERM, got {left}"
        vip, reals = keys[0], keys[1:]
        wait_stats(seed.director, lambda s: s[vip].conns == REQUESTS, f"{REQUESTS} connections counted")
        time.sleep(STATS_TICK)  # one more fold: the destinations' lines settle with the service's
        before = read_stats(seed.director)
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
            restarted = calls.counts()
            after_restart = read_stats(seed.director)
            assert both_reals(second.table()), second.log_tail()
            # The adopted table still serves, and its counters keep counting from where they were.
            more = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)
            assert sorted(more) == sorted(["real1", "real2"] * (REQUESTS // 2)), more
            after_traffic = wait_stats(
                seed.director,
                lambda s: (
                    s[vip].conns >= before[vip].conns + REQUESTS
                    and all(s[r].conns > after_restart[r].conns for r in reals)
                ),
                f"{REQUESTS} more connections counted",
            )
    log = second.log.read_text(errors="replace")

    # The probes saw the first healthd build the table, then no addition or deletion at all.
    assert serving["add_service"] >= 1 and serving["add_dest"] >= len(reals), serving
    changes = {name: restarted[name] - serving[name] for name in serving}
    assert changes["add_service"] == changes["add_dest"] == changes["del_dest"] == 0, (serving, restarted)
    # a service deleted and re-created would count from 0 again
    assert after_restart[vip].conns == before[vip].conns, (before, after_restart)
    for key in keys:
        assert after_restart[key].conns == before[key].conns, (key, before, after_restart)
        assert after_restart[key].inpkts >= before[key].inpkts, (key, before, after_restart)
    assert after_traffic[vip].conns == before[vip].conns + REQUESTS, (before, after_traffic)
    assert reads >= 1, "no table read during the restart"  # the log cannot say it at the first look
    assert "IPVS changed under us" not in log and "cannot update the IPVS table" not in log, log
    assert second.exit_status == 0, second.log_tail()
    report(
        f"kernel calls until both reals served (first healthd, lab's earlier tables included): {serving}",
        f"kernel calls from then to the new healthd's first round: {changes}",
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
