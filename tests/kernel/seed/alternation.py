"""What experiments 1 (NAT) and 2 (DR) share: healthd fills the table, wrr alternates, SIGTERM cleans up."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.kernel.seed.director import STARTUP, Healthd, dests_of, format_table, read_table
from tests.kernel.seed.topology import SeedLab, alternates, fetch, tally

REQUESTS = 8


def check_alternation(
    seed: SeedLab, config: Path, service: str, forward: str, reals: set[str], what: str,
    report: Callable[..., None],
) -> None:
    """Start healthd on `config`, expect both `reals` as `forward` weight 1, and a 1:1 alternation."""
    with Healthd(seed.director, config) as healthd:
        table = healthd.wait_table(lambda t: len(dests_of(t, service)) == 2, STARTUP, what)
        ready = time.monotonic() - healthd.started
        dests = dests_of(table, service)
        assert {(d.forward, d.weight) for d in dests.values()} == {(forward, 1)}, table
        assert set(dests) == reals

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
