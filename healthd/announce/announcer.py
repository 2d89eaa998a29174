"""Keeps the kernel's announced host routes equal to "which addresses can serve", and logs each change.

The device and routes are made only when some virtual service has
`announce=yes`; `close()` withdraws everything (the device goes with it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from healthd.announce.routes import HostRoutes, RouteError
from healthd.announce.tun import LivenessDevice

log = logging.getLogger("healthd")


class Routes(Protocol):
    def add(self, address: str) -> None: ...

    def remove(self, address: str) -> None: ...

    def close(self) -> None: ...


class Device(Protocol):
    name: str

    def close(self) -> None: ...


def open_kernel() -> tuple[Device, Routes]:
    device = LivenessDevice.open()
    try:
        return device, HostRoutes.for_device(device.name)
    except BaseException:
        device.close()
        raise


class Announcer:
    def __init__(self, opener: Callable[[], tuple[Device, Routes]] = open_kernel) -> None:
        self.opener = opener
        self.device: Device | None = None
        self.routes: Routes | None = None
        self.announced: set[str] = set()
        self.failed = False  # the device could not be made: said once, tried again on the next change

    def update(self, wanted: Mapping[str, bool]) -> None:
        """Announce each address mapped to True, withdraw every other one."""
        up = {address for address, ok in wanted.items() if ok}
        if up and self.routes is None and not self._open():
            return
        for address in sorted(self.announced - up):
            self._change(address, announce=False, reason="it cannot serve" if address in wanted
                         else "no virtual service announces it any more")
        for address in sorted(up - self.announced):
            self._change(address, announce=True, reason="a virtual service on it can serve")

    def _open(self) -> bool:
        try:
            self.device, self.routes = self.opener()
        except OSError as exc:
            if not self.failed:
                log.error("announce: %s; nothing is announced", exc)
            self.failed = True
            return False
        self.failed = False
        log.info("announce: host routes of the announced addresses go on %s", self.device.name)
        return True

    def _change(self, address: str, *, announce: bool, reason: str) -> None:
        assert self.routes is not None
        try:
            if announce:
                self.routes.add(address)
                self.announced.add(address)
            else:
                self.routes.remove(address)
                self.announced.discard(address)
        except RouteError as exc:
            log.error("announce: %s", exc)
            return
        verb = "announced" if announce else "withdrawn"
        log.info("announce: %s %s: %s", address, verb, reason,
                 extra={"ANNOUNCE": address, "STATE": "announced" if announce else "withdrawn"})

    def close(self) -> None:
        """Withdraw everything: the device's removal takes its routes with it."""
        if self.routes is not None:
            self.routes.close()
            self.routes = None
        if self.device is not None:
            self.device.close()
            self.device = None
        for address in sorted(self.announced):
            log.info("announce: %s withdrawn: healthd is stopping", address,
                     extra={"ANNOUNCE": address, "STATE": "withdrawn"})
        self.announced.clear()
