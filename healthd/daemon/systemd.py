"""Talking to systemd: sd_notify messages (READY, RELOADING, STOPPING, STATUS) and the watchdog.

The protocol is one datagram per message on the AF_UNIX socket named by
$NOTIFY_SOCKET (a path, or an abstract name starting with "@"). It is written
here rather than through systemd.daemon.notify so that the watchdog period,
MONOTONIC_USEC and error handling are in one visible place, and so that tests
can read the datagrams from a socket they bind themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("healthd.systemd")


class Notifier:
    """Sends sd_notify messages; does nothing when healthd does not run under systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if raw.startswith("@"):
            self.address = b"\0" + raw[1:].encode()
        elif raw.startswith("/"):
            self.address = raw
        self._sock: socket.socket | None = None
        self.watchdog_usec = _watchdog_usec(env)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send one message built from KEY=value fields; False when it could not be sent."""
        if self.address is None:
            return False
        text = "\n".join(f"{key}={_one_line(str(value))}" for key, value in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(text.encode(), self.address)
        except OSError as exc:
            # systemd gone or socket full: the daemon keeps working, the operator sees why.
            log.warning("could not notify systemd (%s): %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status)

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this reload; older ones ignore it.
        return self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(STOPPING=1, STATUS=status)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    @property
    def watchdog_period(self) -> float | None:
        """Seconds between two WATCHDOG=1 pings (half the watchdog timeout), or None when off."""
        if not self.watchdog_usec or self.address is None:
            return None
        return self.watchdog_usec / 2_000_000

    async def run_watchdog(self) -> None:
        """Ping the watchdog from the event loop itself, so that a stuck loop stops the pings."""
        period = self.watchdog_period
        if period is None:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(period)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def _watchdog_usec(env: Mapping[str, str]) -> int:
    """WATCHDOG_USEC when it is meant for this process (WATCHDOG_PID absent or ours), else 0."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return 0
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return 0
    return max(usec, 0)


def _one_line(value: str) -> str:
    # A newline would start a new KEY=value field in the datagram.
    return " ".join(value.splitlines())
