"""Experiment 4 of the seed: health checks on the DR lab (`seed-healthcheck.cf`, request ok.html, receive ok).

A real whose ok.html stops saying ok leaves the table (or drops to weight 0
with quiescent=yes) and comes back when the page is restored; with every real
down the fallback server answers; a real added to the file joins on SIGHUP
after its first passing check while the others stay in the table throughout.

One healthd runs for the whole module, started once with the seed's file (a
start costs tens of seconds on the VM's emulated CPU); each test then edits the
file and reloads, as an operator would, after the module returned to the
seed's file with every real up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.kernel.seed.director import STARTUP, Healthd, Table, TablePredicate, dests_of, format_table
from tests.kernel.seed.seedconf import add_real, seed_config, set_global
from tests.kernel.seed.topology import (
    DR_DIP,
    DR_REALS,
    DR_SORRY,
    DR_VIP,
    SeedLab,
    alternates,
    fetch,
    tally,
    wait_for,
)

# healthd starts slowly on the VM's emulated CPU (tens of seconds): more than the default 120 s per test.
pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(400)]

REQUESTS = 6
SERVICE = f"TCP {DR_VIP}:80 wrr"
SEED_ADDRESSES = {
    "172.17.111.111": DR_VIP,
    "172.17.111.234": DR_REALS["real1"],
    "172.17.111.222": DR_REALS["real2"],
}
CHECKINTERVAL, CHECKTIMEOUT = 1, 3  # as seed-healthcheck.cf sets them
# healthd must act within checkinterval + checktimeout; the VM emulates its CPU (TCG), so allow a margin.
DEADLINE = CHECKINTERVAL + CHECKTIMEOUT + 8
RIP1, RIP2, RIP3 = DR_REALS["real1"], DR_REALS["real2"], DR_REALS["real3"]


def healthcheck_config(*, extra_reals: tuple[str, ...] = (), **globals_: str) -> str:
    """seed-healthcheck.cf on the lab's addresses, autoreload off (only SIGHUP reloads), plus edits."""
    text = set_global(seed_config("seed-healthcheck.cf", SEED_ADDRESSES), "autoreload", "no")
    for directive, value in globals_.items():
        text = set_global(text, directive, value)
    for rip in extra_reals:
        text = add_real(text, f"real={rip}:80 gate 2")
    return text


def weights(table: Table) -> dict[str, int]:
    """Address -> weight of the health-checked service's destinations."""
    return {address: d.weight for address, d in dests_of(table, SERVICE).items()}


BASELINE = {RIP1: 2, RIP2: 2}


@dataclass
class Watched:
    """The DR lab under one healthd for the whole module; each test edits the file and reloads."""

    seed: SeedLab
    healthd: Healthd
    startup: float  # seconds from starting healthd to the first full table

    def configure(self, **globals_: str) -> None:
        """Write the seed's config with these global directives and SIGHUP, as an operator would."""
        text = healthcheck_config(**globals_)
        if self.healthd.config.read_text() != text:
            self.healthd.config.write_text(text)
            self.healthd.reload_and_wait()

    def baseline(self) -> float:
        """The seed's config, every ok.html saying ok, both reals at weight 2; the time that was seen."""
        for site in self.seed.sites.values():
            site.restore_check()
        self.configure()
        table = self.healthd.wait_table(lambda t: weights(t) == BASELINE, 60, "both reals at weight 2")
        assert {d.forward for d in dests_of(table, SERVICE).values()} == {"Route"}, table
        return time.monotonic()


@pytest.fixture(scope="module")
def watched_lab(dr_lab: SeedLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    dr_lab.reset()
    config = tmp_path_factory.mktemp("healthcheck") / "seed-healthcheck.cf"
    config.write_text(healthcheck_config())
    try:
        with Healthd(dr_lab.director, config) as healthd:
            healthd.wait_table(lambda t: weights(t) == BASELINE, STARTUP, "both reals at weight 2")
            yield Watched(dr_lab, healthd, time.monotonic() - healthd.started)
    finally:
        dr_lab.reset()


@pytest.fixture
def watched(watched_lab: Watched) -> Watched:
    watched_lab.baseline()
    return watched_lab


def timed(healthd: Healthd, predicate: TablePredicate, what: str) -> tuple[float, Table]:
    """Seconds until the table satisfies `predicate`, and that table."""
    start = time.monotonic()
    table = healthd.wait_table(predicate, 60, what)
    return time.monotonic() - start, table


def test_broken_real_leaves_the_table_and_returns(watched: Watched, report: Callable[..., None]) -> None:
    seed, healthd = watched.seed, watched.healthd
    ready = time.monotonic()
    seed.sites["real1"].break_check()
    removed, table = timed(healthd, lambda t: weights(t) == {RIP2: 2}, "real1 removed")
    down = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)
    seed.sites["real1"].restore_check()
    restored, _ = timed(healthd, lambda t: weights(t) == BASELINE, "real1 back")
    up = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)

    assert all(RIP2 in weights(t) for t in healthd.since(ready)), "real2 left the table"
    assert removed <= DEADLINE, f"real1 left the table after {removed:.1f} s"
    assert restored <= DEADLINE, f"real1 came back after {restored:.1f} s"
    assert down == ["real2"] * REQUESTS, down
    assert sorted(up) == sorted(["real1", "real2"] * (REQUESTS // 2)) and alternates(up), up
    report(
        f"healthd start to both reals in the table: {watched.startup:.1f} s",
        f"ok.html broken on real1: removed after {removed:.1f} s; requests {tally(down)}",
        f"ok.html restored: back after {restored:.1f} s; requests {tally(up)}",
        *format_table(table),
    )


def test_quiescent_yes_keeps_a_broken_real_at_weight_zero(
    watched: Watched, report: Callable[..., None]
) -> None:
    seed, healthd = watched.seed, watched.healthd
    watched.configure(quiescent="yes")
    ready = time.monotonic()
    seed.sites["real1"].break_check()
    quiesced, table = timed(healthd, lambda t: weights(t) == {RIP1: 0, RIP2: 2}, "real1 at weight 0")
    down = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)
    seed.sites["real1"].restore_check()
    restored, _ = timed(healthd, lambda t: weights(t) == BASELINE, "real1 back at weight 2")
    up = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)

    during = healthd.since(ready)
    assert all(set(weights(t)) == {RIP1, RIP2} for t in during), "a quiescent real left the table"
    assert quiesced <= DEADLINE, f"real1 went to weight 0 after {quiesced:.1f} s"
    assert restored <= DEADLINE, f"real1 got its weight back after {restored:.1f} s"
    assert down == ["real2"] * REQUESTS, down
    assert sorted(up) == sorted(["real1", "real2"] * (REQUESTS // 2)), up
    report(
        f"ok.html broken on real1: weight 0 after {quiesced:.1f} s; requests {tally(down)}",
        f"ok.html restored: weight 2 after {restored:.1f} s; requests {tally(up)}",
        *format_table(table),
    )


def test_fallback_server_answers_when_every_real_is_down(
    watched: Watched, report: Callable[..., None]
) -> None:
    seed, healthd = watched.seed, watched.healthd
    watched.configure(fallback=f"{DR_SORRY}:80 gate")
    assert DR_SORRY not in weights(healthd.table()), "the fallback server is in while reals are up"
    seed.sites["real1"].break_check()
    seed.sites["real2"].break_check()
    switched, table = timed(healthd, lambda t: weights(t) == {DR_SORRY: 1}, "only the fallback server")
    down = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)
    seed.sites["real2"].restore_check()
    restored, _ = timed(healthd, lambda t: weights(t) == {RIP2: 2}, "real2 back, fallback gone")
    up = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)

    assert switched <= DEADLINE, f"the fallback server took over after {switched:.1f} s"
    assert restored <= DEADLINE, f"real2 replaced the fallback after {restored:.1f} s"
    assert down == ["sorry"] * REQUESTS, down
    assert up == ["real2"] * REQUESTS, up
    report(
        f"ok.html broken on both reals: fallback alone after {switched:.1f} s; requests {tally(down)}",
        f"real2 restored: fallback replaced after {restored:.1f} s; requests {tally(up)}",
        *format_table(table),
    )


def test_sighup_adds_a_third_real_after_its_first_passing_check(
    watched: Watched, report: Callable[..., None]
) -> None:
    seed, healthd = watched.seed, watched.healthd
    real3 = seed.sites["real3"]
    real3.break_check()  # so its first check fails: it must not join on the reload alone
    checks_before = len(real3.checks_from(DR_DIP))
    healthd.config.write_text(healthcheck_config(extra_reals=(RIP3,)))
    hup = time.monotonic()
    healthd.reload()
    checked = wait_for(lambda: len(real3.checks_from(DR_DIP)) > checks_before, 60)
    assert checked, f"healthd never checked real3 after SIGHUP:\n{healthd.log_tail()}"
    first_check = time.monotonic() - hup
    healthd.hold(
        lambda t: RIP3 not in weights(t), CHECKINTERVAL + CHECKTIMEOUT, "real3 kept out while failing"
    )
    real3.restore_check()
    joined, table = timed(healthd, lambda t: weights(t) == {**BASELINE, RIP3: 2}, "real3 joined")
    bodies = fetch(seed.client, f"http://{seed.vip}/index.html", REQUESTS)

    during = healthd.since(hup)
    assert during and all(weights(t).keys() >= {RIP1, RIP2} for t in during), "real1 or real2 left the table"
    assert joined <= DEADLINE, f"real3 joined {joined:.1f} s after its check passed"
    assert sorted(bodies) == sorted(["real1", "real2", "real3"] * (REQUESTS // 3)), bodies
    report(
        f"SIGHUP with real3 added (ok.html broken): first check of real3 after {first_check:.1f} s, kept out",
        f"real3's ok.html restored: joined after {joined:.1f} s; requests {tally(bodies)}",
        f"real1 and real2 present in all {len(during)} table reads since SIGHUP",
        *format_table(table),
    )
