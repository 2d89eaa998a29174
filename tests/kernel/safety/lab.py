"""The safety lab: a client, a director and four DR real servers, one VIP per extension under test.

Built from the seed lab's parts (tests/kernel/seed/topology.py): every host in its own
network namespace on one bridge, nginx on each real, each VIP on the director's eth0 and
on every real's lo (arp_ignore/arp_announce set, as for any DR real). Each virtual
service checks its own page (depool.html, ramp.html, ...) so that breaking one feature's
page touches no other virtual. real1 also runs a load agent (agent_server.py).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.kernel.seed.topology import Host, Lab, Website

HERE = Path(__file__).parent
CLIENT, DIP = "10.99.5.10", "10.99.5.117"
REALS = {"real1": "10.99.5.201", "real2": "10.99.5.202", "real3": "10.99.5.203", "real4": "10.99.5.204"}
AGENT_PORT = 9999
# one VIP per virtual service of the config below
VIPS = {
    "depool": "10.99.5.101", "ramp": "10.99.5.102", "agent": "10.99.5.103", "flap": "10.99.5.104",
    "fast": "10.99.5.105", "slow": "10.99.5.106",
}
PAGES = tuple(VIPS)  # each virtual checks /<name>.html for "ok"


def config_text(maintenancedir: Path) -> str:
    """The healthd configuration: ldirectord's directives plus one healthd extension per virtual."""
    r1, r2, r3, r4 = REALS.values()

    def section(name: str, reals: list[str], *extra: str) -> str:
        lines = [f"virtual={VIPS[name]}:80", *(f"\treal={r}" for r in reals),
                 "\tservice=http", "\tscheduler=wrr", "\tchecktype=negotiate",
                 f'\trequest="{name}.html"', '\treceive="ok"', *(f"\t{e}" for e in extra)]
        return "\n".join(lines)

    return "\n\n".join([
        f"checktimeout=2\ncheckinterval=1\nquiescent=no\nautoreload=no\nmaintenancedir={maintenancedir}",
        section("depool", [f"{r}:80 gate 1" for r in (r1, r2, r3, r4)], "depoolthreshold=0.5"),
        section("ramp", [f"{r1}:80 gate 100", f"{r2}:80 gate 100"], "slowstart=10", "drain=60"),
        section("agent", [f"{r1}:80 gate 10 agent:{AGENT_PORT}", f"{r2}:80 gate 10"]),
        section("flap", [f"{r3}:80 gate 1", f"{r4}:80 gate 1"], "successcount=3"),
        section("fast", [f"{r2}:80 gate 1"], "checkinterval=4", "failurecount=3", "fastinterval=0.5"),
        section("slow", [f"{r2}:80 gate 1"], "checkinterval=4", "failurecount=3"),
    ]) + "\n"


@dataclass
class SafetyLab:
    lab: Lab
    client: Host
    director: Host
    sites: dict[str, Website]
    agent_reply: Path
    workdir: Path

    def page(self, real: str, name: str, ok: bool) -> None:
        """Make real's /<name>.html pass (ok) or fail its check."""
        (self.sites[real].root / f"{name}.html").write_text("ok\n" if ok else "maintenance\n")

    def requests_for(self, real: str, name: str) -> int:
        """How many checks of /<name>.html the director made on `real` so far."""
        return len(checks_from(self.sites[real], DIP, f"/{name}.html"))

    def reset(self) -> None:
        for real in self.sites:
            for name in PAGES:
                self.page(real, name, True)
        self.agent_reply.write_text("50%\n")


def checks_from(site: Website, address: str, path: str) -> list[str]:
    return [line for line in site.requests() if line.startswith(f"{address} ") and f" {path} " in line]


def build(lab: Lab) -> SafetyLab:
    net = lab.lan("lan")
    client = lab.host("client")
    net.attach(client, f"{CLIENT}/24")
    director = lab.host("director")
    eth = net.attach(director, f"{DIP}/24")
    director.ip(*(f"addr add {vip}/32 dev {eth}" for vip in VIPS.values()))
    sites = {}
    for name, rip in REALS.items():
        real = lab.host(name)
        net.attach(real, f"{rip}/24")
        real.ip(*(f"addr add {vip}/32 dev lo" for vip in VIPS.values()))
        real.sysctl(
            net__ipv4__conf__lo__arp_ignore=1, net__ipv4__conf__lo__arp_announce=2,
            net__ipv4__conf__all__arp_ignore=1, net__ipv4__conf__all__arp_announce=2,
        )  # fmt: skip
        sites[name] = lab.website(real, name)
    reply = lab.workdir / "agent-reply"
    reply.write_text("50%\n")
    agent_host = next(ns for ns in lab.namespaces if isinstance(ns, Host) and ns.name.endswith("-real1"))
    agent_host.popen(sys.executable, "-S", str(HERE / "agent_server.py"), str(AGENT_PORT), str(reply))
    lab.wait_websites()
    safety = SafetyLab(lab, client, director, sites, reply, lab.workdir)
    safety.reset()
    return safety


def active_conns(director: Host, vip: str) -> dict[str, int]:
    """ActiveConn of each destination of VIP:80 in `ipvsadm -Ln` (the kernel's counter healthd drains on)."""
    out = director.run("ipvsadm", "-Ln", "-t", f"{vip}:80")
    conns = {}
    for line in out.splitlines():
        m = re.match(r"\s+->\s+([\d.]+):\d+\s+\S+\s+\d+\s+(\d+)\s+\d+", line)
        if m:
            conns[m.group(1)] = int(m.group(2))
    return conns
