"""A TUN device that lives exactly as long as healthd: the liveness link behind announced routes.

healthd opens a non-persistent TUN device and puts each announced VIP's host
route on it. Such a device belongs to the open file descriptor: when the
descriptor closes (a clean stop, a crash, SIGKILL, the OOM killer) the kernel
deletes the device and every route through it, and the routing daemon that
imported those routes withdraws them. No timer in healthd has to run for a
dead healthd's routes to go.
"""

from __future__ import annotations

import fcntl
import os
import struct

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
NAME_PATTERN = "healthd%d"  # the kernel picks the first free number


class TunError(OSError):
    """The TUN device could not be made; the message says what to change."""


class LivenessDevice:
    """An open, non-persistent TUN device; `close()` (or the process's death) removes it."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name

    @classmethod
    def open(cls, pattern: str = NAME_PATTERN) -> LivenessDevice:
        try:
            # O_CLOEXEC (Python's default) matters: a check or fallbackcommand that outlives a dead
            # healthd must not keep the device, and so the routes, alive.
            fd = os.open(TUN_PATH, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise TunError(exc.errno, f"cannot open {TUN_PATH} ({exc.strerror}): announce= needs the "
                                      "tun device (modprobe tun; under systemd PrivateDevices=no and "
                                      "DeviceAllow=/dev/net/tun rw)") from exc
        try:
            ifr = struct.pack(f"{IFNAMSIZ}sH", pattern.encode(), IFF_TUN | IFF_NO_PI)
            answer = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as exc:
            os.close(fd)
            raise TunError(exc.errno, f"cannot create a tun device ({exc.strerror}): announce= needs "
                                      "CAP_NET_ADMIN") from exc
        name = answer[:IFNAMSIZ].split(b"\0", 1)[0].decode()
        return cls(fd, name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
