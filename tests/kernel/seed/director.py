"""The director's side of an experiment: healthd run through its real command line, and `ipvsadm -Ln`.

healthd is started inside the director's namespace exactly as an operator
starts it in the foreground (`healthd -d --ipvs netlink CONFIG start`), so the
netlink backend manages that namespace's own IPVS table. What the experiments
assert is what `ipvsadm -Ln` prints there, the operator's view of the table.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.kernel.seed.topology import Host, stop_process, wait_for

# Seconds to wait for healthd's first full table: its start (imports, first checks) takes
# 25-55 s on the VM's emulated CPU when the machine is busy.
STARTUP = 180


@dataclass(frozen=True)
class Destination:
    """One `  -> ADDRESS:PORT  Forward Weight ActiveConn InActConn` line of `ipvsadm -Ln`."""

    address: str
    port: int
    forward: str  # Masq | Route | Tunnel | Local
    weight: int


# service line as ipvsadm prints it, spaces collapsed ("TCP 10.99.1.117:80 wrr") -> its destinations
Table = dict[str, tuple[Destination, ...]]
TablePredicate = Callable[[Table], object]


def parse_ipvsadm(text: str) -> Table:
    """Parse `ipvsadm -Ln` into services and their destinations."""
    table: dict[str, list[Destination]] = {}
    current: list[Destination] | None = None
    for line in text.splitlines():
        words = line.split()
        if not words or line.startswith(("IP Virtual Server", "Prot ", "  -> RemoteAddress")):
            continue
        if words[0] == "->":
            if current is None:
                raise ValueError(f"destination before any service in ipvsadm output: {line!r}")
            host, _, port = words[1].rpartition(":")
            current.append(Destination(host.strip("[]"), int(port), words[2], int(words[3])))
        else:
            current = table.setdefault(" ".join(words), [])
    return {service: tuple(dests) for service, dests in table.items()}


def read_table(director: Host) -> Table:
    return parse_ipvsadm(director.run("ipvsadm", "-Ln"))


def healthd_argv(config: Path, verb: str) -> list[str]:
    """The operator's command: the venv's `healthd` script beside this interpreter."""
    script = Path(sys.executable).with_name("healthd")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "healthd"]
    return [*program, "-d", "--ipvs", "netlink", str(config), verb]


class Healthd:
    """healthd in the foreground in the director's namespace; its output goes to a log file."""

    def __init__(self, director: Host, config: Path) -> None:
        self.director = director
        self.config = config
        self.log = config.with_suffix(".log")
        self.started = 0.0
        self.process: subprocess.Popen[str] | None = None
        self.exit_status: int | None = None
        # every table read, with its monotonic time: lets a test prove what never happened
        self.history: list[tuple[float, Table]] = []

    def __enter__(self) -> Healthd:
        self.started = time.monotonic()
        with self.log.open("w") as log:
            self.process = self.director.popen(
                *healthd_argv(self.config, "start"), stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int | None:
        """SIGTERM, as `systemctl stop healthd` sends it; healthd's exit status (None if it never ended)."""
        if self.process is None:
            return None
        self.exit_status = stop_process(self.process)
        return self.exit_status

    def reload(self) -> None:
        """SIGHUP, as `systemctl reload healthd` sends it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def reloads(self) -> int:
        """How many reloads healthd has logged as done ("reloaded FILE: ...")."""
        return len(re.findall(r"(?m)\breloaded \S", self.log.read_text(errors="replace")))

    def reload_and_wait(self, timeout: float = 60) -> None:
        """SIGHUP, then wait until healthd logs that the reload is done."""
        before = self.reloads()
        self.reload()
        if not wait_for(lambda: self.reloads() > before, timeout):
            raise AssertionError(
                f"healthd did not log a finished reload within {timeout:.0f} s:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def table(self) -> Table:
        self._check_running()
        table = read_table(self.director)
        self.history.append((time.monotonic(), table))
        return table

    def _check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"healthd exited {self.process.returncode}:\n{self.log_tail()}")

    def hold(self, predicate: TablePredicate, seconds: float, what: str) -> int:
        """Read the table for `seconds`, failing as soon as `predicate(table)` is false; the reads made."""
        deadline, reads = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            table = self.table()
            reads += 1
            assert predicate(table), f"{what} no longer holds: {table}\nhealthd log:\n{self.log_tail()}"
            time.sleep(0.2)
        return reads

    def since(self, start: float) -> list[Table]:
        """The tables read at or after monotonic time `start`."""
        return [table for when, table in self.history if when >= start]

    def wait_table(self, predicate: TablePredicate, timeout: float, what: str) -> Table:
        """Poll `ipvsadm -Ln` until `predicate(table)` holds; fail with the table and healthd's log if not."""
        last: list[Table] = [{}]

        def probe() -> bool:
            last[0] = self.table()
            return bool(predicate(last[0]))

        if not wait_for(probe, timeout):
            raise AssertionError(
                f"no {what} within {timeout:.0f} s; ipvsadm -Ln: {last[0]}\nhealthd log:\n{self.log_tail()}"
            )
        return last[0]


def format_table(table: Table) -> list[str]:
    """The table as short lines for a report, ipvsadm's words kept."""
    lines = []
    for service, dests in table.items():
        lines.append(service)
        lines += [f"  -> {d.address}:{d.port} {d.forward} {d.weight}" for d in dests]
    return lines


def dests_of(table: Table, service: str) -> dict[str, Destination]:
    """Destinations of `service` (ipvsadm's service line, e.g. "TCP 10.99.3.111:80 wrr") by address."""
    return {d.address: d for d in table.get(service, ())}
