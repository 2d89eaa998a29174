"""ICMP echo packets: checksum, request layout, reply recognition."""

from __future__ import annotations

import struct

from healthd.checks.icmp import checksum, echo_request, parse_reply


def test_checksum_of_a_packet_including_its_checksum_is_zero() -> None:
    packet = echo_request(4, 0x1234, 7)
    assert checksum(packet) == 0


def test_rfc1071_example() -> None:
    # RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 -> checksum 220d
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_ipv4_reply_behind_its_ip_header() -> None:
    reply = bytearray(echo_request(4, 0xBEEF, 42))
    reply[0] = 0  # echo reply
    ip_header = bytes([0x45]) + bytes(19)
    assert parse_reply(4, ip_header + bytes(reply)) == (0xBEEF, 42)


def test_requests_are_not_replies() -> None:
    ip_header = bytes([0x45]) + bytes(19)
    assert parse_reply(4, ip_header + echo_request(4, 1, 1)) is None
    assert parse_reply(6, echo_request(6, 1, 1)) is None


def test_ipv6_reply() -> None:
    reply = struct.pack("!BBHHH", 129, 0, 0, 0xBEEF, 9) + b"data"
    assert parse_reply(6, reply) == (0xBEEF, 9)


def test_short_packets_are_ignored() -> None:
    assert parse_reply(4, b"\x45") is None
    assert parse_reply(6, b"\x81\x00") is None
