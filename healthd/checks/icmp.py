"""ICMP echo for many reals at once: one raw socket per address family, replies matched to waiters.

A socket per ping would cost a file descriptor and a reader registration per check;
one shared socket per family serves every ping check. Echo requests carry this
Pinger's own random identifier and a sequence number, and a reply is accepted only from the
address that was pinged with the same identifier and sequence.
Raw sockets need root or CAP_NET_RAW; they are opened on the first ping.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct

_ECHO_REQUEST = {4: 8, 6: 128}
_ECHO_REPLY = {4: 0, 6: 129}
_PAYLOAD = b"healthd-ping-0123456789abcdef"


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(family: int, ident: int, seq: int) -> bytes:
    """An ICMP (v4) or ICMPv6 echo request; the kernel fills in the ICMPv6 checksum itself."""
    kind = _ECHO_REQUEST[family]
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if family == 6:
        return header + _PAYLOAD
    csum = checksum(header + _PAYLOAD)
    return struct.pack("!BBHHH", kind, 0, csum, ident, seq) + _PAYLOAD


def parse_reply(family: int, packet: bytes) -> tuple[int, int] | None:
    """(identifier, sequence) of an echo reply, or None for anything else.

    An IPv4 raw socket delivers the IP header too; an ICMPv6 one does not.
    """
    if family == 4:
        if len(packet) < 20:
            return None
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < 8 or packet[0] != _ECHO_REPLY[family] or packet[1] != 0:
        return None
    ident, seq = struct.unpack_from("!HH", packet, 4)
    return ident, seq


_SOL_RAW = 255  # Linux: the level of ICMP_FILTER
_ICMP_FILTER = 1
_ICMP6_FILTER = 1
_RECEIVE_BUFFER = 4 * 1024 * 1024  # a burst of thousands of replies must not be dropped


def _only_echo_replies(sock: socket.socket, family: int) -> None:
    """Ask the kernel to queue echo replies only (a raw socket sees all ICMP, requests included)."""
    if family == 4:
        # a bit set blocks that ICMP type
        sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", 0xFFFFFFFF & ~(1 << _ECHO_REPLY[4])))
    else:
        words = [0xFFFFFFFF] * 8
        words[_ECHO_REPLY[6] >> 5] &= ~(1 << (_ECHO_REPLY[6] & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *words))


def _large_receive_buffer(sock: socket.socket) -> None:
    try:  # root may exceed net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, 33, _RECEIVE_BUFFER)  # SO_RCVBUFFORCE
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)


class Pinger:
    """Sends echo requests and resolves the waiter of each matching reply."""

    def __init__(self) -> None:
        # random, not the pid: two Pingers in one process must not take each other's replies
        self._ident = random.getrandbits(16)
        self._seq = 0
        self._socks: dict[int, socket.socket] = {}
        self._waiters: dict[tuple[int, bytes, int], asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _socket(self, family: int) -> socket.socket:
        sock = self._socks.get(family)
        if sock is None:
            if family == 6:
                sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            sock.setblocking(False)
            _only_echo_replies(sock, family)
            _large_receive_buffer(sock)
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(sock.fileno(), self._on_readable, family, sock)
            self._socks[family] = sock
        return sock

    async def echo(self, family: int, address: str, wait: float) -> bool:
        """Send one echo request to `address`; True if its reply arrives within `wait` seconds.

        Raises OSError when the request cannot be sent (no route, no permission).
        """
        sock = self._socket(family)
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        key = (family, socket.inet_pton(socket.AF_INET6 if family == 6 else socket.AF_INET, address), seq)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        try:
            sock.sendto(echo_request(family, self._ident, seq), (address, 0))
            try:
                async with asyncio.timeout(wait):
                    await waiter
            except TimeoutError:
                return False
            return True
        finally:
            self._waiters.pop(key, None)

    def _on_readable(self, family: int, sock: socket.socket) -> None:
        af = socket.AF_INET6 if family == 6 else socket.AF_INET
        for _ in range(1024):  # bounded per wake-up so a flood cannot starve the loop
            try:
                packet, peer = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. an ICMP error queued on the socket; the waiter times out
            reply = parse_reply(family, packet)
            if reply is None or reply[0] != self._ident:
                continue
            try:
                key = (family, socket.inet_pton(af, peer[0].split("%", 1)[0]), reply[1])
            except OSError:
                continue
            waiter = self._waiters.get(key)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        for sock in self._socks.values():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._socks.clear()
