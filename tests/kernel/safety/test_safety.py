"""healthd's traffic-safety extensions on a real IPVS table, with traffic, in the safety lab.

One healthd runs for the whole module (a start costs tens of seconds on the VM's
emulated CPU) with one virtual service per extension (lab.config_text); each test
breaks pages, writes maintenance files or changes the agent's answer, and watches
`ipvsadm -Ln` as an operator would. Every test starts from the baseline table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kernel.safety.lab import HERE as LAB_DIR
from tests.kernel.safety.lab import (
    REALS,
    VIPS,
    SafetyLab,
    active_conns,
    config_text,
)
from tests.kernel.seed.director import STARTUP, Healthd, Table, dests_of, healthd_argv
from tests.kernel.seed.topology import fetch, tally, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(400)]

R1, R2, R3, R4 = REALS.values()
NAMES = {rip: name for name, rip in REALS.items()}


def service(name: str) -> str:
    return f"TCP {VIPS[name]}:80 wrr"


def weights(table: Table, name: str) -> dict[str, int]:
    return {address: d.weight for address, d in dests_of(table, service(name)).items()}


BASELINE = {
    "depool": {R1: 1, R2: 1, R3: 1, R4: 1},
    "ramp": {R1: 100, R2: 100},
    "agent": {R1: 5, R2: 10},  # real1's agent says 50%
    "flap": {R3: 1, R4: 1},
    "fast": {R2: 1},
    "slow": {R2: 1},
}


def at_baseline(table: Table) -> bool:
    return all(weights(table, name) == want for name, want in BASELINE.items())


@dataclass
class Watched:
    lab: SafetyLab
    healthd: Healthd
    maintenancedir: Path
    startup: float

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.healthd.log.read_text(errors="replace").splitlines() if needle in line]


@pytest.fixture(scope="module")
def watched_lab(safety_lab: SafetyLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    workdir = tmp_path_factory.mktemp("safety")
    maintenancedir = workdir / "maintenance"
    maintenancedir.mkdir()
    config = workdir / "safety.cf"
    config.write_text(config_text(maintenancedir))
    safety_lab.reset()
    safety_lab.director.run("ipvsadm", "-C")
    with Healthd(safety_lab.director, config) as healthd:
        healthd.wait_table(at_baseline, STARTUP, "the baseline table")
        yield Watched(safety_lab, healthd, maintenancedir, time.monotonic() - healthd.started)


@pytest.fixture
def watched(watched_lab: Watched) -> Watched:
    watched_lab.lab.reset()
    for entry in watched_lab.maintenancedir.iterdir():
        entry.unlink()
    watched_lab.healthd.wait_table(at_baseline, 60, "the baseline table")
    return watched_lab


def timed(healthd: Healthd, predicate: Callable[[Table], object], what: str, timeout: float = 60) -> float:
    start = time.monotonic()
    healthd.wait_table(predicate, timeout, what)
    return time.monotonic() - start


def test_agent_answering_50_percent_halves_the_weight(watched: Watched, report: Callable[..., None]) -> None:
    lab, healthd = watched.lab, watched.healthd
    lab.agent_reply.write_text("up\n")
    full = timed(healthd, lambda t: weights(t, "agent") == {R1: 10, R2: 10}, "real1 at its full weight 10")
    lab.agent_reply.write_text("50%\n")
    halved = timed(healthd, lambda t: weights(t, "agent") == {R1: 5, R2: 10}, "real1 at weight 5")
    bodies = fetch(lab.client, f"http://{VIPS['agent']}/index.html", 6)
    lab.agent_reply.write_text("hello\n")  # not an answer: the health check alone decides
    silent = timed(healthd, lambda t: weights(t, "agent") == {R1: 10, R2: 10}, "real1 back at 10")

    assert sorted(bodies) == sorted(["real1"] * 2 + ["real2"] * 4), bodies
    report(
        f"agent says up: real1 at weight 10 after {full:.1f} s",
        f"agent says 50%: real1 at weight 5 (of 10) after {halved:.1f} s; 6 requests {tally(bodies)}",
        f"agent says nothing healthd understands: real1 back at 10 after {silent:.1f} s",
    )


def test_depoolthreshold_keeps_two_of_four_serving(watched: Watched, report: Callable[..., None]) -> None:
    lab, healthd = watched.lab, watched.healthd
    lab.page("real2", "depool", False)
    healthd.wait_table(lambda t: weights(t, "depool") == {R1: 1, R3: 1, R4: 1}, 60, "real2 out")
    lab.page("real3", "depool", False)
    healthd.wait_table(lambda t: weights(t, "depool") == {R1: 1, R4: 1}, 60, "real3 out")
    held_before = len(watched.log_lines("DEPOOLTHRESHOLD"))
    broken = time.monotonic()
    lab.page("real4", "depool", False)  # the third failure of four: real4, failing last, stays in
    assert wait_for(lambda: len(watched.log_lines("DEPOOLTHRESHOLD")) > held_before, 60), healthd.log_tail()
    logged = time.monotonic() - broken
    reads = healthd.hold(lambda t: weights(t, "depool") == {R1: 1, R4: 1}, 3, "two reals serving")
    bodies = fetch(lab.client, f"http://{VIPS['depool']}/index.html", 6)
    program = healthd_argv(healthd.config, "status")
    status = lab.director.run(*[arg for arg in program if arg not in ("-d", "--ipvs", "netlink")])
    lab.page("real2", "depool", True)  # one recovers: the floor is met without the held real
    released = timed(healthd, lambda t: weights(t, "depool") == {R1: 1, R2: 1}, "real4 released")

    line = watched.log_lines("DEPOOLTHRESHOLD")[-1]
    assert f"{R4}:80" in line and "3 of 4 reals fail" in line, line
    assert sorted(bodies) == sorted(["real1", "real4"] * 3), bodies
    assert "HELD IN by depoolthreshold" in status, status
    report(
        f"3 of 4 reals failing under depoolthreshold=0.5: real4 (failed last) held in, "
        f"logged after {logged:.1f} s",
        f"table kept at real1 + real4 over {reads} reads; 6 requests {tally(bodies)}",
        f"log: {line.split(': ', 1)[-1][:150]}",
        f"real2 recovers: real4 released after {released:.1f} s",
    )


def test_flapping_real_does_not_flap_the_table_under_successcount_3(
    watched: Watched, report: Callable[..., None]
) -> None:
    lab, healthd = watched.lab, watched.healthd
    lab.page("real3", "flap", False)
    left = timed(healthd, lambda t: weights(t, "flap") == {R4: 1}, "real3 out")
    start = time.monotonic()
    ok = False
    verdicts = ""
    for _ in range(8):  # pass, fail, pass, ...: flip the page right after each check
        seen = lab.requests_for("real3", "flap")
        ok = not ok
        lab.page("real3", "flap", ok)
        assert wait_for(lambda s=seen: lab.requests_for("real3", "flap") > s, 30), "no check of real3"
        verdicts += "+" if ok else "-"
        healthd.table()
    during = healthd.since(start)
    lab.page("real3", "flap", True)
    back = timed(healthd, lambda t: weights(t, "flap") == {R3: 1, R4: 1}, "real3 back after 3 passes")

    assert during and all(R3 not in weights(t, "flap") for t in during), "the flapping real re-entered"
    report(
        f"real3 failed once: out after {left:.1f} s",
        f"then checks {verdicts} over {time.monotonic() - start - back:.1f} s: real3 stayed out in all "
        f"{len(during)} table reads",
        f"steady passes: back after {back:.1f} s (successcount=3, checkinterval=1)",
    )


def test_fastinterval_acts_before_checkinterval_times_failurecount(
    watched: Watched, report: Callable[..., None]
) -> None:
    lab, healthd = watched.lab, watched.healthd
    start = time.monotonic()
    lab.page("real2", "fast", False)
    lab.page("real2", "slow", False)
    times: dict[str, float] = {}

    def gone(table: Table) -> bool:
        for name in ("fast", "slow"):
            if name not in times and R2 not in weights(table, name):
                times[name] = time.monotonic() - start
        return len(times) == 2

    healthd.wait_table(gone, 60, "real2 out of both virtuals")
    assert times["fast"] < times["slow"], times
    # without fastinterval, three failures 4 s apart take at least 8 s from the first one
    assert times["slow"] >= 7.5, times
    report(
        "checkinterval=4 failurecount=3, page broken at once on both:",
        f"  fastinterval=0.5: out after {times['fast']:.1f} s",
        f"  no fastinterval:  out after {times['slow']:.1f} s",
    )


def test_drain_keeps_a_long_connection_then_slowstart_ramps_the_real_back(
    watched: Watched, report: Callable[..., None]
) -> None:
    lab, healthd = watched.lab, watched.healthd
    vip = VIPS["ramp"]
    out, stop = lab.workdir / "keepalive.out", lab.workdir / "keepalive.stop"
    for path in (out, stop):
        path.unlink(missing_ok=True)
    script = str(LAB_DIR / "keepalive_client.py")
    client = lab.client.popen("python3", "-S", script, vip, "80", str(out), str(stop))
    try:
        answered = wait_for(lambda: out.exists() and out.read_text().strip(), 30)
        assert answered, "the long connection got no answer"
        name = out.read_text().split()[1]
        rip = next(r for r, n in NAMES.items() if n == name)
        other = R2 if rip == R1 else R1
        (watched.maintenancedir / f"{rip}:80").touch()
        drain_start = time.monotonic()
        healthd.wait_table(lambda t: weights(t, "ramp") == {rip: 0, other: 100}, 60, f"{name} at weight 0")
        to_zero = time.monotonic() - drain_start
        conns = active_conns(lab.director, vip)
        bodies = fetch(lab.client, f"http://{vip}/index.html", 6)
        healthd.hold(lambda t: weights(t, "ramp") == {rip: 0, other: 100}, 3, f"{name} draining at weight 0")
        stop.touch()
        closed = time.monotonic()
        healthd.wait_table(lambda t: weights(t, "ramp") == {other: 100}, 60, f"{name} removed")
        left = time.monotonic()
    finally:
        stop.touch()
        client.wait(15)
    answers = [line.split(" ", 1)[1] for line in out.read_text().splitlines()]

    assert conns.get(rip, 0) >= 1, conns
    assert bodies == [NAMES[other]] * 6, bodies
    assert answers and set(answers) == {name}, answers  # never failed, never moved
    drained = [line for line in watched.log_lines("drained after") if f"{rip}:80" in line]
    assert drained and "no active connection left" in drained[-1], watched.log_lines("drain")

    # back from maintenance: a ramp to 100 in steps, visible in ipvsadm -Ln
    (watched.maintenancedir / f"{rip}:80").unlink()
    samples: list[tuple[float, int]] = []
    back = time.monotonic()

    def sample(table: Table) -> bool:
        weight = weights(table, "ramp").get(rip)
        if weight is not None:
            samples.append((time.monotonic() - back, weight))
        return weight == 100

    healthd.wait_table(sample, 60, f"{name} back at weight 100")
    partial = [(t, w) for t, w in samples if w < 100]
    steps = sorted({w for _, w in partial})
    assert [w for _, w in samples] == sorted(w for _, w in samples), samples  # never down
    assert len(steps) >= 5 and steps[0] <= 20, samples
    ramp_span = samples[-1][0] - partial[0][0]
    assert ramp_span >= 5, samples  # slowstart=10: no jump to the full weight
    firsts = {}
    for t, w in partial:
        firsts.setdefault(w, t)
    report(
        f"long connection on {name}; maintenance file: weight 0 after {to_zero:.1f} s, ActiveConn {conns}",
        f"6 new connections meanwhile: {tally(bodies)}; the long one kept answering "
        f"({len(answers)} requests, all {name})",
        f"long connection closed: {name} left the table {left - closed:.1f} s later "
        f"(drained {left - drain_start:.1f} s in all)",
        "maintenance file removed: ramp seen in ipvsadm -Ln, weight at first sight: "
        + ", ".join(f"{w}@{t:.1f}s" for w, t in sorted(firsts.items())) + f", 100@{samples[-1][0]:.1f}s",
    )
