"""bounded() turns everything a server can cause into a failed Outcome, within the deadline."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest

from healthd.checks.dialog import CheckFailed, bounded, read_coded_reply
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol

SPEC = CheckSpec(type=CheckType.NEGOTIATE, service="smtp", protocol=ServiceProtocol.TCP, family=4,
                 address="127.0.0.1", port=25, negotiatetimeout=0.3)


def _raising(exc: BaseException):
    async def dialogue() -> str:
        raise exc

    return dialogue


@pytest.mark.parametrize(
    ("exc", "detail"),
    [
        (CheckFailed("SMTP greeting 554 go away"), "SMTP greeting 554 go away"),
        (ConnectionRefusedError(), "connection refused"),
        (ConnectionResetError(), "connection reset by the server"),
        (asyncio.IncompleteReadError(b"", 10), "connection closed by the server"),
        (asyncio.LimitOverrunError("long", 0), "reply line too long"),
        (ssl.SSLError(1, "WRONG_VERSION_NUMBER"), "TLS failed"),
        (OSError(113, "No route to host"), "connection failed: no route to host"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), "unreadable reply"),
    ],
)
async def test_failures_become_outcomes(exc: BaseException, detail: str) -> None:
    out = await bounded(SPEC, _raising(exc))
    assert not out.ok
    assert out.detail.startswith(detail), out.detail


async def test_success_detail_and_latency() -> None:
    async def dialogue() -> str:
        return "fine"

    out = await bounded(SPEC, dialogue)
    assert out.ok and out.detail == "fine" and 0 <= out.latency < 0.3


async def test_silence_ends_at_the_deadline() -> None:
    async def dialogue() -> str:
        await asyncio.sleep(30)
        return "never"

    started = time.monotonic()
    out = await bounded(SPEC, dialogue)
    assert not out.ok and out.detail == "timed out after 0.3 s"
    assert 0.25 <= time.monotonic() - started < 2.0


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b"220 ready\r\n", (220, "ready")),
        (b"250-first\r\n250-SIZE 10\r\n250 HELP\r\n", (250, "first")),
        (b"230-Welcome\r\n free text line\r\n230 Login successful.\r\n", (230, "Welcome")),
        (b"226\n", (226, "")),
    ],
)
async def test_read_coded_reply(data: bytes, reply: tuple[int, str]) -> None:
    assert await read_coded_reply(_reader(data)) == reply


async def test_read_coded_reply_unfinished_is_an_error() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await read_coded_reply(_reader(b"250-first\r\n250-second\r\n"))
