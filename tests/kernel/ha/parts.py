"""What the HA labs add to the seed lab's parts: contrib files moved onto lab addresses, BIRD, traffic.

The labs run the configuration files the project ships (contrib/), with only
their documentation addresses replaced by the lab's, as an operator would.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.kernel.seed.topology import Host, LabError, wait_for

REPO = Path(__file__).resolve().parents[3]
CONTRIB = REPO / "contrib"


def contrib_file(relative: str, replace: dict[str, str]) -> str:
    """A shipped file with each documentation value replaced; every value must occur."""
    text = (CONTRIB / relative).read_text()
    for old, new in replace.items():
        text, count = re.subn(rf"(?<![\w.]){re.escape(old)}(?![\w])", new, text)
        if count == 0:
            raise ValueError(f"contrib/{relative} does not mention {old}")
    return text


class Bird:
    """BIRD 2 in one namespace, with its own control socket and pid file."""

    def __init__(self, host: Host, workdir: Path, conf: str) -> None:
        self.host = host
        base = workdir / f"bird-{host.name}"
        self.conf, self.sock = base.with_suffix(".conf"), base.with_suffix(".sock")
        self.pid = base.with_suffix(".pid")
        self.conf.write_text(conf)
        self.log = base.with_suffix(".log")
        # -f: foreground, so the lab owns the process and stops it on close
        self.process = host.popen("bird", "-f", "-c", str(self.conf), "-s", str(self.sock),
                                  "-P", str(self.pid), stdout=subprocess.DEVNULL, stderr=self.log.open("w"))

    @staticmethod
    def at(host: Host, workdir: Path) -> Bird:
        """A handle on the BIRD already running in `host` (for birdc only)."""
        bird = Bird.__new__(Bird)
        bird.host, bird.sock = host, workdir / f"bird-{host.name}.sock"
        return bird

    def birdc(self, *args: str) -> str:
        return self.host.run("birdc", "-s", str(self.sock), *args)

    def established(self, protocol: str) -> bool:
        try:
            return "Established" in self.birdc("show", "protocols", protocol)
        except LabError:
            return False


def next_hops(router: Host, prefix: str) -> set[str]:
    """The gateways of the router's kernel route to `prefix` (none, one, or several with ECMP)."""
    routes = json.loads(router.run("ip", "-j", "route", "show", prefix) or "[]")
    hops: set[str] = set()
    for route in routes:
        if "gateway" in route:
            hops.add(route["gateway"])
        for hop in route.get("nexthops", ()):
            hops.add(hop["gateway"])
    return hops


def wait_hops(router: Host, prefix: str, wanted: set[str], timeout: float,
              diagnose: Callable[[], str] = lambda: "") -> float:
    """Seconds until the router's next hops for `prefix` are exactly `wanted`; AssertionError if never."""
    start = time.monotonic()
    if not wait_for(lambda: next_hops(router, prefix) == wanted, timeout, 0.05):
        raise AssertionError(f"next hops of {prefix}: {next_hops(router, prefix)}, not {wanted} "
                             f"within {timeout:.0f} s\n{diagnose()}")
    return time.monotonic() - start


@dataclass
class Prober:
    """One short HTTP request every `interval` from a client, in a thread; remembers each outcome.

    Each request is a new connection (curl per request would cost a second of the VM's
    emulated CPU, so one Python loop in the client's namespace makes them).
    """

    client: Host
    url: str
    interval: float = 0.2
    # (monotonic time the request started, answered?, body or error)
    results: list[tuple[float, bool, str]] = field(default_factory=list)
    _proc: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None

    SCRIPT = r"""
import socket, sys, time
host, port, path, interval = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
for _ in range(int(sys.argv[5])):
    started, started_wall = time.monotonic(), time.time()
    body = ""
    stage = "connect"
    try:
        with socket.create_connection((host, port), timeout=1.5) as s:
            stage = "answer"
            s.settimeout(1.5)
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        ok = head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")
        body = rest.decode(errors="replace").strip()
    except OSError as exc:
        ok, body = False, f"{type(exc).__name__}@{stage}"
    print(f"{started_wall:.3f} {int(ok)} {body}", flush=True)
    time.sleep(max(0.0, interval - (time.monotonic() - started)))
"""

    def start(self, count: int = 1500) -> None:
        host, _, rest = self.url.removeprefix("http://").partition("/")
        address, _, port = host.partition(":")
        self._proc = self.client.popen("python3", "-c", self.SCRIPT, address, port or "80", "/" + rest,
                                       str(self.interval), str(count), stdout=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            wall, ok, *body = line.split(maxsplit=2)
            # the request's start on the prober's wall clock, mapped onto our monotonic clock
            self.results.append((time.monotonic() - (time.time() - float(wall)), ok == "1",
                                 body[0].strip() if body else ""))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)

    def between(self, start: float, end: float = float("inf")) -> list[tuple[float, bool, str]]:
        return [r for r in self.results if start <= r[0] < end]

    def timeline(self, start: float) -> str:
        """The outcomes from `start` on, as "+1.2s real1 +1.4s TimeoutError@connect ..." for messages."""
        return " ".join(f"+{when - start:.1f}s {body if ok else '!' + body}"
                        for when, ok, body in self.between(start))

    def count_ok(self) -> int:
        return sum(1 for r in self.results if r[1])
