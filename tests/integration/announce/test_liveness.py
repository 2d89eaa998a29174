"""The liveness link on the host's kernel: announced routes live exactly as long as the process.

A child process in a network namespace of its own makes healthd's TUN device and
announces two addresses; the kernel must show the routes in table 200 with
protocol 200, remove one on withdrawal, and remove the device and every route
when the child is killed with SIGKILL (no cleanup code runs). Needs root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.root

CHILD = r"""
import sys
from healthd.announce.announcer import Announcer
a = Announcer()
a.update({"192.0.2.10": True, "2001:db8::10": True, "192.0.2.11": True})
a.update({"192.0.2.10": True, "2001:db8::10": True, "192.0.2.11": False})
print(a.device.name, flush=True)
sys.stdin.read()  # until killed
"""


def ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    subprocess.run(["modprobe", "tun"], capture_output=True, check=False)
    name = f"hd-announce-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_routes_follow_the_announcer_and_die_with_the_process(netns: str) -> None:
    child = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", CHILD],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        device = child.stdout.readline().strip()
        assert device.startswith("healthd"), device
        v4 = ip(netns, "route", "show", "table", "200", "proto", "200")
        v6 = ip(netns, "-6", "route", "show", "table", "200", "proto", "200")
        assert v4.split() == ["192.0.2.10", "dev", device, "scope", "link"], v4
        assert v6.split()[:3] == ["2001:db8::10", "dev", device], v6
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 5
        while device in ip(netns, "link") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert device not in ip(netns, "link")
        assert ip(netns, "route", "show", "table", "all", "proto", "200") == ""
        assert ip(netns, "-6", "route", "show", "table", "all", "proto", "200") == ""
    finally:
        if child.poll() is None:
            child.kill()
