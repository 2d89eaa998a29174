"""simpletcp: the request as configured, a half-close, and a reply line matching receive."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol

from .servers import hang, serve

BASE = CheckSpec(type=CheckType.NEGOTIATE, service="simpletcp", protocol=ServiceProtocol.TCP, family=4,
                 address="127.0.0.1", port=0, request="PING\\nQUIT\\n", receive="^\\+PONG",
                 receive_re=r"^\+PONG", negotiatetimeout=1.0)


def answering(lines: bytes, seen: list[bytes]) -> object:
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        seen.append(await reader.read())  # everything up to the client's half-close
        writer.write(lines)
        await writer.drain()
    return behaviour


async def test_request_newlines_half_close_and_matching_line(runner: CheckRunner) -> None:
    seen: list[bytes] = []
    async with serve(answering(b"+OK hello\r\n+PONG\r\n", seen), read_head=False) as srv:  # type: ignore[arg-type]
        outcome = await runner.run(replace(BASE, port=srv.port))
    assert outcome.ok, outcome
    assert seen == [b"PING\nQUIT\n"]  # read() returned: the checker half-closed after sending


async def test_receive_is_matched_per_line(runner: CheckRunner) -> None:
    seen: list[bytes] = []
    # "+PONG" appears, but not at the start of a line
    async with serve(answering(b"-ERR no +PONG for you\r\n", seen), read_head=False) as srv:  # type: ignore[arg-type]
        outcome = await runner.run(replace(BASE, port=srv.port))
    assert not outcome.ok and outcome.detail == "connection closed without a matching line"


async def test_last_line_without_newline_counts(runner: CheckRunner) -> None:
    seen: list[bytes] = []
    async with serve(answering(b"banner\n+PONG", seen), read_head=False) as srv:  # type: ignore[arg-type]
        assert (await runner.run(replace(BASE, port=srv.port))).ok


async def test_no_receive_means_any_line(runner: CheckRunner) -> None:
    seen: list[bytes] = []
    async with serve(answering(b"anything\n", seen), read_head=False) as srv:  # type: ignore[arg-type]
        assert (await runner.run(replace(BASE, port=srv.port, receive="", receive_re=None))).ok
    async with serve(answering(b"", seen), read_head=False) as srv:  # type: ignore[arg-type]
        silent = await runner.run(replace(BASE, port=srv.port, receive="", receive_re=None))
    assert not silent.ok and silent.detail == "connection closed without a reply"


async def test_hanging_server_times_out(runner: CheckRunner) -> None:
    async with serve(hang, read_head=False) as srv:
        outcome = await runner.run(replace(BASE, port=srv.port, negotiatetimeout=0.5))
    assert not outcome.ok and outcome.detail == "timed out after 0.5 s"


async def test_endless_unmatched_stream_stops_at_the_limit(runner: CheckRunner) -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        while True:
            writer.write(b"noise line\n" * 1000)
            await writer.drain()

    async with serve(flood, read_head=False) as srv:
        outcome = await runner.run(replace(BASE, port=srv.port, negotiatetimeout=5.0))
    assert not outcome.ok and outcome.detail.startswith("no line matched in the first")
    assert outcome.latency < 4.0


async def test_refused(runner: CheckRunner) -> None:
    async with serve(hang, read_head=False) as srv:
        port = srv.port
    outcome = await runner.run(replace(BASE, port=port))
    assert not outcome.ok and outcome.detail == "connection refused"
