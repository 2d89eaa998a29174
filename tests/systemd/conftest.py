"""The systemd tier: healthd's Debian package installed and run under the host's systemd as PID 1.

Runs only inside the test VM booted with `python -m tests.vm.harness --systemd` (`./run systemd`,
part of `./run test`), as root: it installs the package with apt, starts units, kills processes
and edits /etc, all on the VM's throw-away overlay root. Anywhere else every test is skipped
with that reason. The packages come from `./run deb` (build/healthd_VERSION_all.deb, and a newer
build with the suffix UPGRADE_SUFFIX for the upgrade step); `./run systemd` builds both first.

One lab for the whole session: the VM's root namespace is the director (healthd runs there, under
systemd); two real servers (nginx) and a client live in network namespaces, wired to the root by
veth pairs. The virtual service is the root's own address on the client's link (LVS-NAT).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from healthd import __version__
from tests.kernel.seed.topology import Host, Lab, Website, fetch, wait_for

HERE = Path(__file__).parent
REPO = HERE.parents[1]
IN_SYSTEMD_VM = os.environ.get("HEALTHD_VM_INIT") == "systemd" and os.getpid() != 1
UPGRADE_SUFFIX = "+vmtest"
PACKAGE = REPO / "build" / f"healthd_{__version__}_all.deb"
NEWER = REPO / "build" / f"healthd_{__version__}{UPGRADE_SUFFIX}_all.deb"
REPORT = REPO / "build" / "systemd-tier.json"

VIP = "10.98.100.1"
CLIENT = "10.98.100.2"
REALS = {"real1": "10.98.1.2", "real2": "10.98.2.2"}
CONFIG = Path("/etc/ha.d/ldirectord.cf")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.systemd)
            if not IN_SYSTEMD_VM:
                item.add_marker(pytest.mark.skip(
                    reason="needs root and the test VM with systemd as PID 1: run `./run systemd`"))


# ---------------------------------------------------------------- commands

def sh(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
                             f"{proc.stdout.strip()[-2000:]}")
    return proc


def timed(*args: str, check: bool = True, timeout: float = 300) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    proc = sh(*args, check=check, timeout=timeout)
    return time.monotonic() - started, proc


def show(unit: str, prop: str) -> str:
    return sh("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()


def journal(unit: str, *matches: str, since: str | None = None) -> list[dict[str, str]]:
    """The unit's journal entries (JSON) matching FIELD=value `matches`."""
    args = ["journalctl", "--no-pager", "-o", "json", "-u", unit, *matches]
    if since:
        args += ["--since", since]
    out = sh(*args, check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def messages(unit: str) -> str:
    return "\n".join(str(e.get("MESSAGE", "")) for e in journal(unit))


# ---------------------------------------------------------------- the IPVS table

Table = dict[str, dict[str, int]]  # "TCP 10.98.100.1:80" -> {"10.98.1.2:80": weight}


def table() -> Table:
    out: Table = {}
    current: dict[str, int] | None = None
    for line in sh("ipvsadm", "-Ln").stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in ("TCP", "UDP", "FWM"):
            current = out.setdefault(f"{fields[0]} {fields[1]}", {})
        elif fields and fields[0] == "->" and current is not None and fields[1] != "RemoteAddress:Port":
            current[fields[1]] = int(fields[3])
    return out


def conns(service: str) -> int:
    """The service's connection counter: it only grows while the service stays in the kernel."""
    proto, addr = service.split()
    flag = {"TCP": "-t", "UDP": "-u"}[proto]
    for line in sh("ipvsadm", "-Ln", "--stats", flag, addr).stdout.splitlines():
        fields = line.split()
        if fields[:2] == [proto, addr]:
            return int(fields[2])
    raise AssertionError(f"{service} is not in the table")


def wait_table(predicate, timeout: float, what: str) -> Table:  # type: ignore[no-untyped-def]
    def probe() -> Table | None:
        t = table()
        return t if predicate(t) else None

    got = wait_for(probe, timeout, 0.3)
    assert got, f"{what} within {timeout:.0f} s; the table: {table()}"
    return got


class Sampler:
    """Reads the table every few hundred ms in a thread; the samples show any flap in between."""

    def __init__(self) -> None:
        self.samples: list[Table] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # Every 0.5 s: one ipvsadm costs ~0.15 s of the emulated CPU, which the restarts under test
        # need too; a flap (services removed at stop, re-added after the next first round) would last
        # seconds there.
        while not self._stop.is_set():
            self.samples.append(table())
            self._stop.wait(0.5)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


class Traffic:
    """A client fetching the virtual service's index page in a loop (bounded), in a thread."""

    def __init__(self, client: Host, url: str, limit: int = 300) -> None:
        self.client, self.url, self.limit = client, url, limit
        self.bodies: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.bodies) < self.limit:
            # a generous timeout: the emulated CPU is busy with dpkg and two healthd starts meanwhile
            self.bodies += fetch(self.client, self.url, 5, timeout=15)
            self._stop.wait(0.5)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)


# ---------------------------------------------------------------- the lab

@dataclass
class SystemdLab:
    lab: Lab
    client: Host
    sites: dict[str, Website]
    timings: dict[str, float] = field(default_factory=dict)

    def real(self, name: str, port: int = 80) -> str:
        return f"{REALS[name]}:{port}"


def config_text(*, weight2: int = 1, port: int = 80, extra: str = "") -> str:
    return (
        "checktimeout=3\ncheckinterval=1\nquiescent=no\n"
        f"virtual={VIP}:{port}\n"
        f"\treal={REALS['real1']}:80 masq 1\n"
        f"\treal={REALS['real2']}:80 masq {weight2}\n"
        "\tservice=http\n\trequest=\"ok.html\"\n\treceive=\"ok\"\n\tscheduler=rr\n" + extra
    )


def _veth(lab: Lab, role: str, root_addr: str, host_addr: str, root_if: str) -> Host:
    host = lab.host(role)
    sh("ip", "link", "add", root_if, "type", "veth", "peer", "name", "eth0", "netns", host.name)
    sh("ip", "addr", "add", f"{root_addr}/24", "dev", root_if)
    sh("ip", "link", "set", root_if, "up")
    host.ip(f"addr add {host_addr}/24 dev eth0", "link set eth0 up", f"route add default via {root_addr}")
    return host


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemdLab]:
    for deb in (PACKAGE, NEWER):
        assert deb.exists(), f"{deb} is missing: `./run systemd` builds it (`./run deb [SUFFIX]`)"
    # The host's root, shared by the VM, may carry a policy-rc.d that forbids starting services
    # (as in containers): maintainer scripts would then skip the restart this tier tests. And
    # man-db's trigger would rebuild its index for minutes under emulation. Both only on the overlay.
    Path("/usr/sbin/policy-rc.d").unlink(missing_ok=True)
    Path("/var/lib/man-db/auto-update").unlink(missing_ok=True)
    # Under emulation (TCG, 15-20x slower than a real CPU) a healthd start takes about a minute; the
    # default 90 s start timeout would fail it on a busy host. Only the VM gets this drop-in.
    for unit in ("healthd.service", "healthd@.service"):
        dropin = Path(f"/etc/systemd/system/{unit}.d")
        dropin.mkdir(parents=True, exist_ok=True)
        (dropin / "emulated-cpu.conf").write_text("[Service]\nTimeoutStartSec=300\n")
    sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    base = Lab(tmp_path_factory.mktemp("systemd-lab"), prefix="hd")  # not in /tmp: see ./run systemd
    try:
        client = _veth(base, "client", VIP, CLIENT, "hdc0")
        sites = {}
        for i, (name, address) in enumerate(REALS.items(), 1):
            host = _veth(base, name, address.rsplit(".", 1)[0] + ".1", address, f"hdr{i}")
            sites[name] = base.website(host, name)
        base.wait_websites()
        lab = SystemdLab(base, client, sites)
        yield lab
    finally:
        base.close()
        REPORT.write_text(json.dumps(TIMINGS, indent=1) + "\n")


TIMINGS: dict[str, float | str] = {}


def record(name: str, value: float | str) -> None:
    TIMINGS[name] = round(value, 2) if isinstance(value, float) else value
    print(f"\n  [systemd tier] {name}: {TIMINGS[name]}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "systemd tier: measured")
        for name, value in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {value}")


def real_key(name: str) -> str:
    return f"{REALS[name]}:80"


def both_reals(service: str, t: Table) -> bool:
    return set(t.get(service, {})) == {real_key("real1"), real_key("real2")}


def unit_status(unit: str) -> str:
    return sh("systemctl", "status", "--no-pager", "-n", "0", unit, check=False).stdout


STATUS_RE = re.compile(r'Status: "([^"]*)"')


def status_line(unit: str) -> str:
    """What `systemctl status` shows after "Status:" (healthd's STATUS= message)."""
    text = unit_status(unit)
    match = STATUS_RE.search(text)
    assert match, text
    return match.group(1)
