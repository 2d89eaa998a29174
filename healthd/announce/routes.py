"""The announced host routes in the kernel, over rtnetlink (pyroute2): add, remove, list.

Routes go into their own kernel table (never consulted for forwarding: no rule
points at it) with their own protocol number, so a routing daemon can import
exactly these (BIRD: `kernel table 200; learn;` with `krt_source = 200`) and
nothing healthd does changes how the director itself forwards packets.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

ROUTE_TABLE = 200
ROUTE_PROTO = 200


class RouteError(OSError):
    """A route could not be added or removed; the message names it."""


def host_prefix(address: str) -> tuple[int, str, int]:
    """(family, address, prefix length) of a VIP's host route: /32 or /128."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return socket.AF_INET, str(ip), 32
    return socket.AF_INET6, str(ip), 128


class HostRoutes:
    """Host routes through one device (by index), in healthd's table."""

    def __init__(self, ifindex: int, ipr: Any | None = None) -> None:
        if ipr is None:
            from pyroute2 import IPRoute  # heavy import: only when something is announced

            ipr = IPRoute()
        self.ipr = ipr
        self.ifindex = ifindex

    @classmethod
    def for_device(cls, name: str) -> HostRoutes:
        from pyroute2 import IPRoute

        ipr = IPRoute()
        found = ipr.link_lookup(ifname=name)
        if not found:
            ipr.close()
            raise RouteError(f"device {name} vanished")
        ipr.link("set", index=found[0], state="up")
        return cls(found[0], ipr)

    def _route(self, command: str, address: str) -> None:
        family, dst, length = host_prefix(address)
        try:
            self.ipr.route(command, family=family, dst=dst, dst_len=length, oif=self.ifindex,
                           table=ROUTE_TABLE, proto=ROUTE_PROTO, scope=253 if family == socket.AF_INET else 0)
        except Exception as exc:  # pyroute2's NetlinkError and socket errors
            code = getattr(exc, "code", None)
            if command == "replace" or code not in (3, 17):  # ESRCH on del, EEXIST on add: already so
                raise RouteError(f"cannot {command} the route {dst}/{length}: {exc}") from exc

    def add(self, address: str) -> None:
        self._route("replace", address)

    def remove(self, address: str) -> None:
        self._route("del", address)

    def close(self) -> None:
        self.ipr.close()
