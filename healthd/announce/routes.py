"""The announced host routes in the kernel, over rtnetlink: add and remove one /32 or /128.

Routes go into their own kernel table (never consulted for forwarding: no rule
points at it) with their own protocol number, so a routing daemon can import
exactly these (BIRD: `kernel table 200; learn;` with `krt_source = 200`) and
nothing healthd does changes how the director itself forwards packets.
A few fixed-size messages, written here rather than through pyroute2, whose
synchronous IPRoute cannot run inside healthd's event loop.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import itertools
import os
import socket
import struct

ROUTE_TABLE = 200
ROUTE_PROTO = 200

RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
RTA_DST, RTA_OIF, RTA_TABLE = 1, 4, 15
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1


class RouteError(OSError):
    """A route could not be added or removed; the message names it."""


def host_prefix(address: str) -> tuple[int, bytes, int]:
    """(family, packed address, prefix length) of a VIP's host route: /32 or /128."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return socket.AF_INET, ip.packed, 32
    return socket.AF_INET6, ip.packed, 128


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("HH", length, kind) + payload + b"\0" * (-length % 4)


def route_message(kind: int, flags: int, seq: int, address: str, ifindex: int) -> bytes:
    family, packed, length = host_prefix(address)
    scope = RT_SCOPE_LINK if family == socket.AF_INET else RT_SCOPE_UNIVERSE
    rtmsg = struct.pack("BBBBBBBBI", family, length, 0, 0, 0, ROUTE_PROTO, scope, RTN_UNICAST, 0)
    attrs = (_attr(RTA_DST, packed) + _attr(RTA_OIF, struct.pack("I", ifindex))
             + _attr(RTA_TABLE, struct.pack("I", ROUTE_TABLE)))
    body = rtmsg + attrs
    return struct.pack("IHHII", 16 + len(body), kind, flags, seq, 0) + body


def set_up(name: str) -> None:
    """Bring a device up (SIOCSIFFLAGS), as `ip link set NAME up`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifr = struct.pack("16sH", name.encode(), 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", name.encode(), flags | IFF_UP))


class HostRoutes:
    """Host routes through one device, in healthd's table."""

    def __init__(self, ifindex: int) -> None:
        self.ifindex = ifindex
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.settimeout(5)
        self.sock.bind((0, 0))
        self._seq = itertools.count(1)

    @classmethod
    def for_device(cls, name: str) -> HostRoutes:
        try:
            set_up(name)
            return cls(socket.if_nametoindex(name))
        except OSError as exc:
            raise RouteError(exc.errno, f"cannot use device {name}: {exc.strerror or exc}") from exc

    def _request(self, kind: int, flags: int, address: str, ignore: int) -> None:
        seq = next(self._seq)
        what = f"{'add' if kind == RTM_NEWROUTE else 'remove'} the route to {address}"
        try:
            self.sock.send(route_message(kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, address, self.ifindex))
            while True:
                data = self.sock.recv(65536)
                offset = 0
                while offset + 16 <= len(data):
                    length, mtype, _flags, rseq, _pid = struct.unpack_from("IHHII", data, offset)
                    if mtype == NLMSG_ERROR and rseq == seq:
                        code = -struct.unpack_from("i", data, offset + 16)[0]
                        if code in (0, ignore):
                            return
                        raise RouteError(code, f"cannot {what}: {os.strerror(code)}")
                    offset += max(length, 16) + (-length % 4)
        except RouteError:
            raise
        except OSError as exc:
            raise RouteError(exc.errno, f"cannot {what}: {exc.strerror or exc}") from exc

    def add(self, address: str) -> None:
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, address, 0)

    def remove(self, address: str) -> None:
        self._request(RTM_DELROUTE, 0, address, errno.ESRCH)  # already gone is fine

    def close(self) -> None:
        self.sock.close()
