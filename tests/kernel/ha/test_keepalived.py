"""Active/standby (issue 16, part 1): keepalived moves the VIP, healthd keeps both tables, IPVS syncs.

Client, directors A and B and two reals on one LAN (LVS-DR). Each director runs
keepalived with contrib/keepalived/keepalived.conf (VRRP only, `lvs_sync_daemon`)
and healthd with contrib/keepalived/ldirectord.cf. A long-lived HTTP keep-alive
connection and a stream of new connections run through A; A's link is cut.
Measured: the VIP's move to B, the long-lived connection's gap, requests lost.
"""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.kernel.ha.parts import Prober, contrib_file
from tests.kernel.seed.director import STARTUP, Healthd, dests_of
from tests.kernel.seed.topology import Host, Lab, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(420)]

CLIENT = "10.96.0.10"
DIRECTORS = {"dira": ("10.96.0.11", 150), "dirb": ("10.96.0.12", 100)}
REALS = {"real1": "10.96.0.21", "real2": "10.96.0.22"}
VIP = "10.96.0.111"
SERVICE = f"TCP {VIP}:80 wrr"
ADVERT = 1.0
# RFC 3768: the backup declares the master down after 3 adverts plus its skew (256 - priority) / 256.
MASTER_DOWN = 3 * ADVERT + (256 - DIRECTORS["dirb"][1]) / 256
MARGIN = 3.0  # VRRP runs on the VM's emulated CPU, beside everything else


class Keepalived:
    def __init__(self, host: Host, workdir: Path, conf: str) -> None:
        base = workdir / f"keepalived-{host.name}"
        path = base.with_suffix(".conf")
        path.write_text(conf)
        self.log = base.with_suffix(".log")
        # -n: foreground (the lab stops it), -l: log to stderr; own pid files per director
        self.process = host.popen(
            "keepalived", "-n", "-l", "-D", "-f", str(path), "-p", str(base.with_suffix(".pid")),
            "-r", str(base.with_suffix(".vrrp.pid")), "-c", str(base.with_suffix(".checkers.pid")),
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"))


@dataclass
class LongConnection:
    """One HTTP/1.1 keep-alive connection from the client asking every `interval`: the answers' times."""

    client: Host
    interval: float = 0.2
    answers: list[float] = field(default_factory=list)  # monotonic times of answered requests
    error: str = ""
    _proc: subprocess.Popen[str] | None = None

    SCRIPT = r"""
import http.client, sys, time
conn = http.client.HTTPConnection(sys.argv[1], 80, timeout=30)
for _ in range(int(sys.argv[3])):
    conn.request("GET", "/index.html")
    body = conn.getresponse().read().decode().strip()
    print(f"{time.time():.3f} {body}", flush=True)
    time.sleep(float(sys.argv[2]))
"""

    def start(self, count: int = 1000) -> None:
        self._proc = self.client.popen("python3", "-c", self.SCRIPT, VIP, str(self.interval), str(count),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            wall, _, self.body = line.strip().partition(" ")
            self.answers.append(time.monotonic() - (time.time() - float(wall)))
        assert self._proc.stderr is not None
        self.error = self._proc.stderr.read()[-500:]

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)

    def gap_after(self, start: float) -> float:
        """The longest wait between answers from shortly before `start` on."""
        times = [t for t in self.answers if t >= start - 2 * self.interval - 1]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def build(lab: Lab, workdir: Path) -> dict:
    lan = lab.lan("lan")
    client = lab.host("client")
    lan.attach(client, f"{CLIENT}/24")
    directors = {}
    for name, (address, _priority) in DIRECTORS.items():
        host = lab.host(name)
        lan.attach(host, f"{address}/24")
        directors[name] = host
    for name, address in REALS.items():
        host = lab.host(name)
        lan.attach(host, f"{address}/24")
        host.ip(f"addr add {VIP}/32 dev lo")
        host.sysctl(net__ipv4__conf__lo__arp_ignore=1, net__ipv4__conf__lo__arp_announce=2,
                    net__ipv4__conf__all__arp_ignore=1, net__ipv4__conf__all__arp_announce=2)
        lab.website(host, name)
    lab.wait_websites()
    return {"client": client, "directors": directors}


def test_a_connection_survives_the_active_directors_death(
    tmp_path: Path, report: Callable[..., None]
) -> None:
    lab = Lab(tmp_path)
    try:
        run(lab, tmp_path, report)
    finally:
        lab.close()


def has_vip(host: Host) -> bool:
    return f" {VIP}/32 " in host.run("ip", "-o", "addr", "show", "dev", "eth0")


def run(lab: Lab, workdir: Path, report: Callable[..., None]) -> None:
    parts = build(lab, workdir)
    client, directors = parts["client"], parts["directors"]
    dira, dirb = directors["dira"], directors["dirb"]
    cf = contrib_file("keepalived/ldirectord.cf", {
        "192.0.2.111": VIP, "192.0.2.21": REALS["real1"], "192.0.2.22": REALS["real2"]})
    for name, host in directors.items():
        conf = contrib_file("keepalived/keepalived.conf", {"192.0.2.111": VIP})
        if name == "dirb":  # the three lines the file marks for director 2
            conf = conf.replace("router_id director1", "router_id director2").replace(
                "priority 150", "priority 100")
        Keepalived(host, workdir, conf)
    healthds = {}
    for name, host in directors.items():
        config = workdir / f"{name}.cf"  # the same content; its own name, so pidfile and socket differ
        config.write_text(cf)
        healthds[name] = Healthd(host, config).__enter__()
    long = LongConnection(client)
    prober = Prober(client, f"http://{VIP}/index.html", interval=0.2)
    try:
        assert wait_for(lambda: has_vip(dira), 60), "A never became VRRP master"
        assert not has_vip(dirb)
        for hd in healthds.values():  # both tables ready: the standby's too
            hd.wait_table(lambda t: len(dests_of(t, SERVICE)) == 2, STARTUP, "both reals")
        daemons = {name: host.run("ipvsadm", "-L", "--daemon") for name, host in directors.items()}
        assert "master sync daemon" in daemons["dira"], daemons
        assert "backup sync daemon" in daemons["dirb"], daemons

        long.start()
        prober.start()
        assert wait_for(lambda: len(long.answers) >= 5 and len(prober.results) >= 5, 60), long.error
        # the standby has the long-lived connection from the sync daemon
        assert wait_for(lambda: _synced(dirb), 20), dirb.run("ipvsadm", "-Lnc")

        dira.ip("link set eth0 down")  # A is gone: no adverts, no forwarding
        # from here on: a request started before the command returned may still have gone through A
        cut = time.monotonic()
        assert wait_for(lambda: has_vip(dirb), MASTER_DOWN + MARGIN, 0.05), "B never took the VIP"
        moved = time.monotonic() - cut
        first_new = _first_ok_after(prober, cut, 30)
        time.sleep(4)
        end = time.monotonic() - 2  # requests started later may not have finished
        after = prober.between(cut + first_new, end)
        # lost: requests started from one timeout before the cut until the first one B answered
        lost = [r for r in prober.between(cut - 1.5, cut + first_new) if not r[1]]
        gap = long.gap_after(cut)
        answers_after = [t for t in long.answers if t > cut + moved]
        daemon_b = dirb.run("ipvsadm", "-L", "--daemon")
        timeline = prober.timeline(cut)
        conns_b = dirb.run("ipvsadm", "-Lnc")
    finally:
        long.stop()
        prober.stop()
        for hd in healthds.values():
            hd.stop()
    assert answers_after, f"the long-lived connection stopped: {long.error}"
    # new connections go through B within the VRRP timeout (plus the same margin as the VIP's move)
    assert first_new <= MASTER_DOWN + MARGIN, f"after the cut: {timeline}"
    assert after and all(ok for _, ok, _ in after), f"after the cut: {timeline}\nB's connections:\n{conns_b}"
    assert "master sync daemon" in daemon_b, daemon_b
    report(
        f"VIP moved to B {moved:.1f} s after A's link was cut (master down interval {MASTER_DOWN:.1f} s)",
        f"first new connection answered through B started {first_new:.1f} s after the cut; "
        f"requests lost before it: {len(lost)} (one every {prober.interval} s, 1.5 s timeout); "
        f"after it {len(after)}/{len(after)} ok",
        f"long-lived connection: kept answering through B, longest gap {gap:.1f} s "
        f"({len(answers_after)} answers after the move)",
        "sync daemon: A master, B backup before; B master after",
    )


def _synced(host: Host) -> bool:
    """Whether the standby holds a synced ESTABLISHED connection to the VIP from the client."""
    out = host.run("ipvsadm", "-Lnc")
    return any("ESTABLISHED" in line and CLIENT in line and f"{VIP}:80" in line for line in out.splitlines())


def _first_ok_after(prober: Prober, start: float, timeout: float) -> float:
    def probe() -> float | None:
        for when, ok, _ in prober.between(start):
            if ok:
                return when - start
        return None

    found = wait_for(probe, timeout, 0.05)
    assert found is not None, prober.results[-10:]
    return found
