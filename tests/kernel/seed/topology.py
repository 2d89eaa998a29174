"""The seed lab's machines, rebuilt from network namespaces, veth pairs and bridges.

A `Lab` owns every namespace and process it creates and removes them all on
close. A `Lan` is a switch: a bridge in a namespace of its own, which each host
joins through a veth pair, so a lab's wiring reads like the seed's diagrams
(client, director and real servers on one segment for DR; a bridged and a
host-only segment for NAT). Addresses are private (10.99.0.0/16) and exist only
inside the lab's namespaces.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

_lab_numbers = itertools.count(1)
T = TypeVar("T")


class LabError(RuntimeError):
    """A lab could not be built: the message names the command and what it printed."""


def _run(args: list[str], *, input: str | None = None, timeout: float = 30) -> str:
    done = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise LabError(
            f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


@dataclass
class Namespace:
    """One network namespace: a machine of the lab, or a switch."""

    name: str
    lab: Lab

    def run(self, *args: str, timeout: float = 30) -> str:
        """Run a command inside this namespace; its stdout, or LabError when it fails."""
        return _run(["ip", "netns", "exec", self.name, *args], timeout=timeout)

    def ip(self, *lines: str) -> None:
        """Apply `ip` commands (one per line, without the leading `ip`) in one process."""
        _run(["ip", "-n", self.name, "-batch", "-"], input="\n".join(lines) + "\n")

    def sysctl(self, **settings: int | str) -> None:
        """Set sysctls inside the namespace (`net.ipv4.ip_forward=1` is spelled net__ipv4__ip_forward)."""
        pairs = [f"{key.replace('__', '.')}={value}" for key, value in settings.items()]
        self.run("sysctl", "-q", "-w", *pairs)

    def popen(self, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        """Start a long-running process inside the namespace; the lab stops it on close."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *args], text=True, **kwargs)  # type: ignore[call-overload]
        self.lab.processes.append(proc)
        return proc


@dataclass
class Host(Namespace):
    """A machine with interfaces eth0, eth1, ... on the lab's LANs."""

    interfaces: int = 0

    def curl(self, url: str, *, timeout: float = 5) -> str:
        """The body `curl` gets for `url` from this host, stripped; "" when the request fails."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, "curl", "-s", "-m", str(timeout), url],
            capture_output=True,
            text=True,
            timeout=timeout + 10,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else ""


@dataclass
class Lan:
    """A switch: a bridge `br0` in its own namespace."""

    switch: Namespace
    ports: int = 0

    def attach(self, host: Host, address: str) -> str:
        """Wire `host` to this LAN with `address` (CIDR); returns the host's interface name."""
        ifname = f"eth{host.interfaces}"
        host.interfaces += 1
        self.ports += 1
        port = f"p{self.ports}"
        _run(["ip", "link", "add", ifname, "netns", host.name, "type", "veth",
              "peer", "name", port, "netns", self.switch.name])  # fmt: skip
        self.switch.ip(f"link set {port} master br0", f"link set {port} up")
        host.ip(f"addr add {address} dev {ifname}", f"link set {ifname} up")
        return ifname


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {base}.pid;
error_log {base}.errors warn;
events {{ worker_connections 256; }}
http {{
    types {{ text/html html; }}
    log_format seed '$remote_addr $request_method $uri $status';
    access_log {base}.requests seed;
    client_body_temp_path {base}.tmp;
    proxy_temp_path {base}.tmp;
    server {{
{listen}
        root {root};
    }}
}}
"""


@dataclass
class Website:
    """A real server's site served by nginx: index.html names the server, ok.html says ok.

    nginx rather than a Python server because the VM emulates its CPU: nginx is
    up in a fraction of a second where Python's http.server takes several.
    It listens on all addresses, as a DR real must answer on the VIP its lo holds.
    """

    host: Host
    name: str
    root: Path
    ports: tuple[int, ...] = (80,)
    process: subprocess.Popen[str] | None = None
    ready: bool = False

    @property
    def request_log(self) -> Path:
        return self.root.with_suffix(".requests")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "index.html").write_text(f"{self.name}\n")
        self.restore_check()
        base = self.root.with_suffix("")
        conf = self.root.with_suffix(".nginx.conf")
        listen = "\n".join(f"        listen {port};" for port in self.ports)
        conf.write_text(NGINX_CONF.format(base=base, root=self.root, listen=listen))
        self.process = self.host.popen(
            "nginx", "-e", f"{base}.errors", "-p", str(self.root.parent), "-c", str(conf),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def requests(self) -> list[str]:
        """Every request served so far, as "10.99.3.117 GET /ok.html 200"."""
        try:
            return self.request_log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def checks_from(self, address: str) -> list[str]:
        """The requests for ok.html that came from `address` (the director: healthd's checks)."""
        return [line for line in self.requests() if line.startswith(f"{address} ") and " /ok.html " in line]

    def wait_ready(self, timeout: float = 30) -> None:
        """nginx writes its pid file once its sockets listen."""
        assert self.process is not None
        if self.ready:
            return
        pidfile = self.root.with_suffix(".pid")
        if not wait_for(lambda: pidfile.exists() or self.process.poll() is not None, timeout, 0.05):
            raise LabError(f"nginx of {self.name} did not start within {timeout:.0f} s")
        if self.process.poll() is not None:
            errors = self.root.with_suffix(".errors")
            detail = errors.read_text().strip() if errors.exists() else "no error log"
            raise LabError(f"nginx of {self.name} exited {self.process.returncode}: {detail}")
        self.ready = True

    def break_check(self) -> None:
        """Make ok.html stop saying ok, as the seed does to take a real out."""
        (self.root / "ok.html").write_text("maintenance\n")

    def restore_check(self) -> None:
        (self.root / "ok.html").write_text("ok\n")


@dataclass
class Lab:
    """Every namespace and process of one experiment; `close()` removes them all."""

    workdir: Path
    prefix: str = field(default_factory=lambda: f"seed{os.getpid()}n{next(_lab_numbers)}")
    namespaces: list[Namespace] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    websites: list[Website] = field(default_factory=list)

    def _netns(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        _run(["ip", "netns", "add", name])
        return name

    def host(self, role: str) -> Host:
        host = Host(self._netns(role), self)
        self.namespaces.append(host)
        host.ip("link set lo up")
        return host

    def lan(self, role: str) -> Lan:
        switch = Namespace(self._netns(role), self)
        self.namespaces.append(switch)
        switch.ip("link add br0 type bridge", "link set br0 up")
        return Lan(switch)

    def website(self, host: Host, name: str, ports: tuple[int, ...] = (80,)) -> Website:
        site = Website(host, name, self.workdir / f"{name}-site", ports)
        self.websites.append(site)
        site.start()
        return site

    def wait_websites(self) -> None:
        for site in self.websites:
            site.wait_ready()

    def close(self) -> None:
        for proc in reversed(self.processes):
            stop_process(proc)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)


def stop_process(proc: subprocess.Popen[str], grace: float = 5) -> int | None:
    """SIGTERM, then SIGKILL after `grace` seconds; the exit status, None if it never ended."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                return None
    return proc.returncode


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
    """Poll `predicate` until it returns something truthy; that value, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# The seed's machines keep their last octets; the networks move into 10.99.0.0/16.
NAT_CLIENT, NAT_VIP, NAT_DIP = "10.99.1.10", "10.99.1.117", "10.99.2.145"
NAT_REALS = {"real1": "10.99.2.146", "real2": "10.99.2.143"}
DR_CLIENTS = ("10.99.3.10", "10.99.3.11")
DR_DIP, DR_VIP = "10.99.3.117", "10.99.3.111"
DR_REALS = {"real1": "10.99.3.234", "real2": "10.99.3.222", "real3": "10.99.3.230"}
DR_SORRY = "10.99.3.250"  # the fallback ("sorry") server of experiment 4


@dataclass
class SeedLab:
    """One experiment's machines: who to curl from, where healthd runs, which sites answer."""

    lab: Lab
    clients: list[Host]
    director: Host
    vip: str
    sites: dict[str, Website]  # by server name, which is also what its index.html says
    addresses: dict[str, str]  # server name -> its real IP (RIP)

    @property
    def client(self) -> Host:
        return self.clients[0]

    def reset(self) -> None:
        """Back to the lab as built: every ok.html says ok, no IPVS service, no firewall rule."""
        for site in self.sites.values():
            site.restore_check()
        if Path("/proc/net/ip_vs").exists():  # absent on a host without IPVS, where only wiring tests run
            self.director.run("ipvsadm", "-C")
        self.director.run("nft", "flush", "ruleset")


def build_nat(lab: Lab) -> SeedLab:
    """Experiment 1: client and director on a "bridged" LAN, reals on a "host-only" LAN behind it.

    The VIP is the director's outside address; the reals' default route is the
    director's inside address (DIP) and the director forwards (ip_forward=1), so
    replies pass back through IPVS to be un-NATed.
    """
    wan, inside = lab.lan("wan"), lab.lan("lan")
    client = lab.host("client")
    wan.attach(client, f"{NAT_CLIENT}/24")
    director = lab.host("director")
    wan.attach(director, f"{NAT_VIP}/24")
    inside.attach(director, f"{NAT_DIP}/24")
    director.sysctl(net__ipv4__ip_forward=1)
    sites = {}
    for name, rip in NAT_REALS.items():
        real = lab.host(name)
        inside.attach(real, f"{rip}/24")
        real.ip(f"route add default via {NAT_DIP}")
        sites[name] = lab.website(real, name)
    lab.wait_websites()
    return SeedLab(lab, [client], director, NAT_VIP, sites, dict(NAT_REALS))


def build_dr(
    lab: Lab, reals: tuple[str, ...] = ("real1", "real2"), *, clients: int = 1,
    ports: tuple[int, ...] = (80,), sorry: bool = False,
) -> SeedLab:  # fmt: skip
    """Experiments 2-4: everyone on one LAN; the VIP on the director's eth0 and on every real's lo.

    A real must neither answer ARP for the VIP nor announce it (arp_ignore=1,
    arp_announce=2), or the client would bypass the director.
    """
    net = lab.lan("lan")
    hosts = []
    for i in range(clients):
        hosts.append(lab.host(f"client{i + 1}"))
        net.attach(hosts[-1], f"{DR_CLIENTS[i]}/24")
    director = lab.host("director")
    eth = net.attach(director, f"{DR_DIP}/24")
    director.ip(f"addr add {DR_VIP}/32 dev {eth}")
    servers = {name: DR_REALS[name] for name in reals}
    if sorry:
        servers["sorry"] = DR_SORRY
    sites = {}
    for name, rip in servers.items():
        real = lab.host(name)
        net.attach(real, f"{rip}/24")
        real.ip(f"addr add {DR_VIP}/32 dev lo")
        real.sysctl(
            net__ipv4__conf__lo__arp_ignore=1, net__ipv4__conf__lo__arp_announce=2,
            net__ipv4__conf__all__arp_ignore=1, net__ipv4__conf__all__arp_announce=2,
        )  # fmt: skip
        sites[name] = lab.website(real, name, ports)
    lab.wait_websites()
    return SeedLab(lab, hosts, director, DR_VIP, sites, servers)


def fetch(client: Host, url: str, count: int, timeout: float = 5) -> list[str]:
    """`count` sequential requests for `url` from `client`: each answer's body, "" for a failed one.

    One curl process makes them all (starting curl costs about a second in the
    VM), each on a new connection ("Connection: close") so that IPVS schedules
    every request, exactly as `count` separate curl runs would be.
    """
    return fetch_urls(client, [url] * count, timeout)


def fetch_urls(client: Host, urls: list[str], timeout: float = 5) -> list[str]:
    done = subprocess.run(
        ["ip", "netns", "exec", client.name, "curl", "-s", "-m", str(timeout), "-H", "Connection: close",
         "-w", "\\n@%{http_code}@\\n", *urls],
        capture_output=True, text=True, timeout=len(urls) * (timeout + 1) + 10, check=False,
    )  # fmt: skip
    parts = re.split(r"\n@(\d{3})@\n", done.stdout)
    bodies = [
        body.strip() if code == "200" else "" for body, code in zip(parts[0::2], parts[1::2], strict=False)
    ]
    if len(bodies) != len(urls):
        raise LabError(
            f"curl answered {len(bodies)} of {len(urls)} requests: {done.stdout!r} {done.stderr!r}"
        )
    return bodies


def tally(bodies: list[str]) -> str:
    """ "real1=4 real2=4" for a list of answers, failed requests counted as "failed"."""
    counts = Counter(body or "failed" for body in bodies)
    return " ".join(f"{name}={counts[name]}" for name in sorted(counts))


def alternates(bodies: list[str]) -> bool:
    """Whether no server answered twice in a row: what wrr does with equal weights."""
    return all(a != b for a, b in itertools.pairwise(bodies))


def mac_of(host: Host, ifname: str) -> str:
    return host.run("cat", f"/sys/class/net/{ifname}/address").strip()
