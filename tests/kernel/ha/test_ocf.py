"""Pacemaker (issue 16, part 2): OCF agents driving healthd on a real IPVS table, checked by ocf-tester.

Debian's ocf:heartbeat:ldirectord with `ldirectord=/path/to/healthd` (the
one-parameter switch for an existing cluster), then healthd's own agent
(ocf/healthd, installed as ocf:healthd:healthd). Both run in a network
namespace of their own, so their IPVS table is theirs. Beyond ocf-tester: a
crash (kill -9) leaves a stale pidfile that must read as "not running" (7), so
the cluster restarts healthd; and healthd's own monitor fails on a process that
exists but does not answer (SIGSTOP).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from healthd.daemon.pidfile import pidfile_path
from tests.kernel.ha.parts import REPO
from tests.kernel.seed.topology import Lab

# ocf-tester runs some twenty healthd commands: minutes on the VM's emulated CPU
pytestmark = [pytest.mark.kernel, pytest.mark.root, pytest.mark.timeout(900)]

HEARTBEAT_AGENT = "/usr/lib/ocf/resource.d/heartbeat/ldirectord"
HEALTHD_AGENT = str(REPO / "ocf" / "healthd")
HEALTHD = str(Path(sys.executable).with_name("healthd"))
OCF_SUCCESS, OCF_ERR_GENERIC, OCF_NOT_RUNNING = 0, 1, 7
VIP = "10.95.0.1"


@pytest.fixture
def site(tmp_path: Path):
    """A namespace with an address to serve from and a config whose real is always up (checktype=on)."""
    lab = Lab(tmp_path)
    host = lab.host("ocf")
    host.ip(f"addr add {VIP}/32 dev lo")
    config = tmp_path / "ocf.cf"
    config.write_text(f"checkinterval=1\nlogfile=\"{tmp_path}/healthd.log\"\n\nvirtual={VIP}:80\n"
                      "\treal=10.95.0.2:80 gate\n\tservice=http\n\tchecktype=on\n")
    try:
        yield host, config
    finally:
        subprocess.run(["ip", "netns", "exec", host.name, HEALTHD, str(config), "stop"], capture_output=True)
        lab.close()


def agent(host, path: str, action: str, params: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCF_ROOT": "/usr/lib/ocf", **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}
    return subprocess.run(["ip", "netns", "exec", host.name, path, action], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def ocf_tester(host, path: str, params: dict[str, str]) -> subprocess.CompletedProcess[str]:
    options = [arg for k, v in params.items() for arg in ("-o", f"{k}={v}")]
    return subprocess.run(["ip", "netns", "exec", host.name, "ocf-tester", "-n", "lb", *options, path],
                          capture_output=True, text=True, timeout=600, check=False)


def healthd_pid(host, config: Path) -> int:
    out = host.run(HEALTHD, "status", "--json", str(config))
    return int(json.loads(out)["pid"])


def table(host) -> str:
    return host.run("ipvsadm", "-Ln")


def test_debians_ldirectord_agent_drives_healthd(site) -> None:
    host, config = site
    path, params = HEARTBEAT_AGENT, {"configfile": str(config), "ldirectord": HEALTHD}
    tested = ocf_tester(host, path, params)
    assert tested.returncode == 0 and "passed all tests" in tested.stdout, tested.stdout + tested.stderr
    # A crash leaves the pidfile behind (here: the pid of a process that has exited). The agent
    # reads "not running" (7) only from ldirectord's words "ldirectord stale pid file", so that
    # the cluster starts healthd again instead of seeing an error it cannot recover from.
    gone = subprocess.Popen(["true"])
    gone.wait()
    pidfile = pidfile_path(str(config))
    pidfile.write_text(f"{gone.pid}\n")
    status = subprocess.run([HEALTHD, str(config), "status"], capture_output=True, text=True, check=False)
    assert status.returncode == 1 and "ldirectord stale pid file" in status.stderr, status
    probe = agent(host, path, "monitor", params)
    assert probe.returncode == OCF_NOT_RUNNING, probe
    pidfile.unlink()


def test_healthds_own_agent(site) -> None:
    host, config = site
    path, params = HEALTHD_AGENT, {"configfile": str(config), "binary": HEALTHD}
    tested = ocf_tester(host, path, params)
    assert tested.returncode == 0 and "passed all tests" in tested.stdout, tested.stdout + tested.stderr
    # A process that exists but does not answer on its control socket is a failure, not "running";
    # a crashed one (stale pidfile) is "not running".
    assert agent(host, path, "start", params).returncode == OCF_SUCCESS
    assert "10.95.0.2:80" in table(host)  # started means: the first round is in the kernel's table
    pid = healthd_pid(host, config)
    os.kill(pid, signal.SIGSTOP)
    try:
        hung = agent(host, path, "monitor", params)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert hung.returncode == OCF_ERR_GENERIC, hung
    os.kill(pid, signal.SIGKILL)
    crashed = agent(host, path, "monitor", params)
    assert crashed.returncode == OCF_NOT_RUNNING, crashed
    assert agent(host, path, "stop", params).returncode == OCF_SUCCESS
    # a file healthd refuses fails validation as "not configured" (6), naming the line
    bad = config.with_name("bad.cf")
    bad.write_text("virtual=7\n\treal=10.95.0.2 gate\n\tannounce=yes\n")
    refused = agent(host, HEALTHD_AGENT, "validate-all", {**params, "configfile": str(bad)})
    assert refused.returncode == 6 and "bad.cf:3" in refused.stderr, refused
