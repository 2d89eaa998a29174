"""Route health injection (issue 16, part 3): two directors announce one VIP over BGP to a router (BIRD 2).

Client -- router -- LAN with directors A and B and two reals (LVS-DR). Both
directors run healthd from the same ldirectord.cf (`announce=yes`,
`scheduler=mh`) and BIRD with contrib/bird/bird-director.conf; the router runs
contrib/bird/bird-router.conf and installs the VIP with one next hop per
director that announces it (ECMP). Measured: the withdrawal after A's checks
fail, the return after they pass, and the withdrawal after `kill -9` of A's healthd.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel.ha.parts import Bird, Prober, contrib_file, next_hops, wait_hops
from tests.kernel.seed.director import STARTUP, Healthd, dests_of
from tests.kernel.seed.topology import Lab, LabError, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(420)]

CLIENT, ROUTER_OUT, ROUTER_IN = "10.97.1.10", "10.97.1.1", "10.97.2.1"
DIRECTORS = {"dira": "10.97.2.11", "dirb": "10.97.2.12"}
REALS = {"real1": "10.97.2.21", "real2": "10.97.2.22"}
VIP = "10.97.9.1"
SERVICE = f"TCP {VIP}:80 mh"
BOUND = 5.0  # seconds: the promise for a withdrawal after a crash (BIRD sees the device go at once)

CONFIG = f"""\
checktimeout=1
checkinterval=1
quiescent=no
announce=yes

virtual={VIP}:80
\treal={REALS['real1']}:80 gate
\treal={REALS['real2']}:80 gate
\tservice=http
\tscheduler=mh
\trequest="ok.html"
\treceive="ok"
\tchecktype=negotiate
"""

BLOCK_CHECKS = """\
table inet labblock {
    chain out {
        type filter hook output priority 0;
        tcp dport 80 drop
    }
}
"""


def build(lab: Lab) -> dict:
    # /dev/net/tun appears once the module is loaded: systemd creates the node at boot
    # (kmod static-nodes), the test VM's small init does not.
    subprocess.run(["modprobe", "tun"], check=True)
    wan, lan = lab.lan("wan"), lab.lan("lan")
    client, router = lab.host("client"), lab.host("router")
    wan.attach(client, f"{CLIENT}/24")
    client.ip(f"route add default via {ROUTER_OUT}")
    wan.attach(router, f"{ROUTER_OUT}/24")
    lan.attach(router, f"{ROUTER_IN}/24")
    # forward, and hash flows on ports too so one client's connections use both directors
    router.sysctl(net__ipv4__ip_forward=1, net__ipv4__fib_multipath_hash_policy=1)
    directors = {}
    for name, address in DIRECTORS.items():
        host = lab.host(name)
        lan.attach(host, f"{address}/24")
        host.ip(f"addr add {VIP}/32 dev lo", f"route add default via {ROUTER_IN}")
        directors[name] = host
    sites = {}
    for name, address in REALS.items():
        host = lab.host(name)
        lan.attach(host, f"{address}/24")
        host.ip(f"addr add {VIP}/32 dev lo", f"route add default via {ROUTER_IN}")
        host.sysctl(net__ipv4__conf__lo__arp_ignore=1, net__ipv4__conf__lo__arp_announce=2,
                    net__ipv4__conf__all__arp_ignore=1, net__ipv4__conf__all__arp_announce=2)
        sites[name] = lab.website(host, name)
    lab.wait_websites()
    return {"client": client, "router": router, "directors": directors, "sites": sites}


def test_two_directors_announce_the_vip_while_they_can_serve(
    tmp_path: Path, report: Callable[..., None]
) -> None:
    lab = Lab(tmp_path)
    try:
        run(lab, tmp_path, report)
    finally:
        lab.close()


def run(lab: Lab, tmp_path: Path, report: Callable[..., None]) -> None:
    parts = build(lab)
    router, client, directors = parts["router"], parts["client"], parts["directors"]
    dira = directors["dira"]
    addr_a, addr_b = DIRECTORS["dira"], DIRECTORS["dirb"]

    router_bird = Bird(router, tmp_path, contrib_file("bird/bird-router.conf", {
        "192.0.2.1": ROUTER_IN, "192.0.2.11": addr_a, "192.0.2.12": addr_b}))
    for name, host in directors.items():
        Bird(host, tmp_path, contrib_file("bird/bird-director.conf", {
            "192.0.2.11": DIRECTORS[name], "192.0.2.1": ROUTER_IN}))
    healthds = {}
    for name, host in directors.items():
        config = tmp_path / f"{name}.cf"  # same content; own name, so pidfile and socket differ
        config.write_text(CONFIG)
        healthds[name] = Healthd(host, config).__enter__()
    hd_a = healthds["dira"]

    def diagnose() -> str:
        def safe(call: Callable[[], str]) -> str:
            try:
                return call()
            except LabError as exc:
                return str(exc)

        parts = [f"router: {safe(lambda: router_bird.birdc('show', 'route', 'all'))}"]
        for name, host in directors.items():
            table = safe(lambda h=host: h.run("ip", "route", "show", "table", "200"))
            parts.append(f"{name} table 200: {table}")
            parts.append(f"{name} bird: {safe(lambda h=host: Bird.at(h, tmp_path).birdc('show', 'route'))}")
            parts.append(f"{name} healthd: {healthds[name].log_tail(15)}")
        return "\n".join(parts)
    try:
        assert wait_for(lambda: router_bird.established("director1") and router_bird.established("director2"),
                        60), router_bird.birdc("show", "protocols")
        for hd in healthds.values():
            hd.wait_table(lambda t: len(dests_of(t, SERVICE)) == 2, STARTUP, "both reals")
        started = time.monotonic()
        wait_hops(router, f"{VIP}/32", {addr_a, addr_b}, 60, diagnose)
        ecmp_after_ready = time.monotonic() - started

        prober = Prober(client, f"http://{VIP}/index.html", interval=0.2)
        prober.start()
        try:
            assert wait_for(lambda: len(prober.results) >= 10, 60), "the client's requests do not run"
            both = _served_by_both(directors)

            # A loses its checks (its path to the reals for health checks): it withdraws, B serves.
            _nft(dira, BLOCK_CHECKS)
            blocked = time.monotonic()
            withdraw_fail = wait_hops(router, f"{VIP}/32", {addr_b}, 30, diagnose)
            hd_a.wait_table(lambda t: not dests_of(t, SERVICE), 10, "A's reals out of its table")
            settled = time.monotonic()
            time.sleep(4)
            after_withdraw = prober.between(settled, time.monotonic() - 2)
            lost_fail = [r for r in prober.between(blocked, settled) if not r[1]]

            # A's checks pass again: it announces again.
            dira.run("nft", "delete", "table", "inet", "labblock")
            restore = wait_hops(router, f"{VIP}/32", {addr_a, addr_b}, 30, diagnose)

            # kill -9 of A's healthd: the kernel removes its tun device and route, BIRD withdraws.
            assert hd_a.process is not None
            killed = time.monotonic()
            hd_a.process.send_signal(signal.SIGKILL)
            withdraw_kill = wait_hops(router, f"{VIP}/32", {addr_b}, 30, diagnose)
            time.sleep(4)
            after_kill = prober.between(killed, time.monotonic() - 2)
            # B kept announcing throughout (its next hop was in every set waited for above)
            assert next_hops(router, f"{VIP}/32") == {addr_b}
        finally:
            prober.stop()
        # A clean stop of B's healthd (SIGTERM) withdraws its announcement too: no director is left.
        hd_b = healthds["dirb"]
        assert hd_b.process is not None
        hd_b.process.send_signal(signal.SIGTERM)
        withdraw_stop = wait_hops(router, f"{VIP}/32", set(), 30, diagnose)
        assert hd_b.stop() == 0, hd_b.log_tail()
    finally:
        for hd in healthds.values():
            hd.stop()

    assert after_withdraw and all(ok for _, ok, _ in after_withdraw), after_withdraw
    assert after_kill and all(ok for _, ok, _ in after_kill), after_kill
    assert withdraw_kill <= BOUND, f"{withdraw_kill:.2f} s"
    report(
        f"ECMP: two next hops {ecmp_after_ready:.1f} s after both tables were full; "
        f"both directors forwarded client traffic: {both}",
        f"A's checks blocked: route withdrawn after {withdraw_fail:.1f} s "
        f"(checkinterval 1 s, checktimeout 1 s); requests failed meanwhile: {len(lost_fail)}; "
        f"after withdrawal {len(after_withdraw)}/{len(after_withdraw)} ok",
        f"A's checks unblocked: two next hops again after {restore:.1f} s",
        f"kill -9 of A's healthd: route withdrawn after {withdraw_kill:.2f} s (bound {BOUND:.0f} s); "
        f"requests in the {len(after_kill)} after the kill all ok",
        f"SIGTERM to B's healthd: route withdrawn after {withdraw_stop:.2f} s (no director left)",
        f"client requests: {prober.count_ok()}/{len(prober.results)} ok overall",
    )


def _nft(host, ruleset: str) -> None:
    subprocess.run(["ip", "netns", "exec", host.name, "nft", "-f", "-"], input=ruleset, text=True, check=True)


def _served_by_both(directors: dict) -> bool:
    """Whether each director's IPVS service has forwarded connections (ipvsadm's counters)."""
    def conns(host) -> int:
        out = host.run("ipvsadm", "-Ln", "--stats")
        for line in out.splitlines():
            if line.startswith("TCP") and VIP in line:
                return int(line.split()[2])
        return 0

    assert wait_for(lambda: all(conns(h) > 0 for h in directors.values()), 30), \
        {name: conns(h) for name, h in directors.items()}
    return True
