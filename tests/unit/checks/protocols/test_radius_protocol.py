"""Table tests for the RADIUS packet building and reply verification (no sockets)."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest

from healthd.checks import radius
from healthd.checks.dialog import CheckFailed

SECRET, AUTH = b"s3cret", bytes(range(16))


def unhide(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    plain, previous = b"", authenticator
    for i in range(0, len(hidden), 16):
        key = hashlib.md5(secret + previous).digest()
        plain += bytes(a ^ b for a, b in zip(hidden[i:i + 16], key, strict=True))
        previous = hidden[i:i + 16]
    return plain.rstrip(b"\0")


@pytest.mark.parametrize("password", [b"", b"short", b"exactly16bytes!!", b"x" * 17, b"y" * 128])
def test_hide_password_round_trips_in_whole_blocks(password: bytes) -> None:
    hidden = radius.hide_password(password, SECRET, AUTH)
    assert len(hidden) % 16 == 0 and len(hidden) >= 16
    assert unhide(hidden, SECRET, AUTH) == password
    if password:
        assert password not in hidden


def test_hide_password_refuses_overlong() -> None:
    with pytest.raises(CheckFailed):
        radius.hide_password(b"z" * 129, SECRET, AUTH)


def _attributes(packet: bytes) -> list[tuple[int, bytes]]:
    found, at = [], 20
    while at < len(packet):
        kind, length = packet[at], packet[at + 1]
        found.append((kind, packet[at + 2:at + length]))
        at += length
    return found


def test_access_request_layout_and_message_authenticator() -> None:
    packet = radius.build_access_request(7, AUTH, b"alice", b"pw", SECRET)
    code, ident, length = struct.unpack("!BBH", packet[:4])
    assert (code, ident, length) == (1, 7, len(packet))
    assert packet[4:20] == AUTH
    attrs = _attributes(packet)
    assert [kind for kind, _ in attrs] == [80, 1, 2, 32]
    assert attrs[1][1] == b"alice" and attrs[3][1] == b"healthd"
    assert unhide(attrs[2][1], SECRET, AUTH) == b"pw"
    zeroed = packet[:22] + b"\0" * 16 + packet[38:]
    assert hmac.new(SECRET, zeroed, hashlib.md5).digest() == attrs[0][1]


def _reply(code: int, ident: int, secret: bytes, attributes: bytes = b"") -> bytes:
    header = struct.pack("!BBH", code, ident, 20 + len(attributes))
    signature = hashlib.md5(header + AUTH + attributes + secret).digest()
    return header + signature + attributes


@pytest.mark.parametrize("code", [2, 3, 11])
def test_reply_code_accepts_signed_reply(code: int) -> None:
    assert radius.reply_code(_reply(code, 9, SECRET, b"\x12\x05abc"), 9, AUTH, SECRET) == code


def test_reply_code_ignores_other_identifier() -> None:
    assert radius.reply_code(_reply(2, 8, SECRET), 9, AUTH, SECRET) is None


@pytest.mark.parametrize(
    "reply",
    [_reply(2, 9, b"other-secret"), b"\x02\x09\x00",
     b"\x02\x09\x00\x40" + _reply(2, 9, SECRET)[4:]],
    ids=["wrong-secret", "too-short", "bad-length"],
)
def test_reply_code_rejects_unverifiable(reply: bytes) -> None:
    with pytest.raises(CheckFailed):
        radius.reply_code(reply, 9, AUTH, SECRET)


@pytest.mark.parametrize(
    ("code", "receive_re", "ok"),
    [(2, None, True), (3, None, True), (11, None, True), (3, "Access-Accept", False),
     (2, "Access-Accept", True), (3, "Accept|Reject", True), (4, None, False), (2, "(", False)],
)
def test_judge(code: int, receive_re: str | None, ok: bool) -> None:
    if ok:
        assert radius.judge(code, receive_re).startswith("RADIUS Access-")
    else:
        with pytest.raises(CheckFailed):
            radius.judge(code, receive_re)
