"""The agent line parser (a table of lines) and the bounded agent query against real loopback sockets."""

from __future__ import annotations

import asyncio

import pytest

from healthd.checks.agent import MAX_LINE, AgentReply, AgentState, parse_agent_line, query_agent

CASES = [
    ("75%", AgentReply(75, None)),
    ("50%\n", AgentReply(50, None)),
    ("0%", AgentReply(0, None)),
    ("150%", AgentReply(100, None)),  # an agent may only lower its share
    ("12.5%", AgentReply(12, None)),
    ("up", AgentReply(None, AgentState.READY)),
    ("ready", AgentReply(None, AgentState.READY)),
    ("drain", AgentReply(None, AgentState.DRAIN)),
    ("maint", AgentReply(None, AgentState.MAINT)),
    ("down", AgentReply(None, AgentState.DOWN)),
    ("fail", AgentReply(None, AgentState.DOWN)),
    ("stopped", AgentReply(None, AgentState.DOWN)),
    ("DOWN", AgentReply(None, AgentState.DOWN)),
    ("50% ready", AgentReply(50, AgentState.READY)),
    ("ready,25%", AgentReply(25, AgentState.READY)),
    ("drain up", AgentReply(None, AgentState.READY)),  # the later word wins
    ("  80%\t maxconn:30 ", AgentReply(80, None)),  # unknown words are ignored
    ("down # disk full", AgentReply(None, AgentState.DOWN)),
    ("# up", None),  # only a comment
    ("", None),
    ("hello world", None),
    ("-5%", None),
    ("%", None),
    ("50 %", None),
    ("\x00\xff", None),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_parse_agent_line(line: str, expected: AgentReply | None) -> None:
    assert parse_agent_line(line) == expected


def test_reply_prints_as_an_agent_line() -> None:
    assert str(AgentReply(50, AgentState.READY)) == "50% ready"
    assert parse_agent_line(str(AgentReply(None, AgentState.DRAIN))) == AgentReply(None, AgentState.DRAIN)


async def _agent(reply: bytes | None, *, delay: float = 0.0) -> tuple[asyncio.Server, int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            if reply is not None:
                writer.write(reply)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_query_reads_one_line() -> None:
    server, port = await _agent(b"50%\nignored second line\n")
    async with server:
        assert await query_agent("127.0.0.1", port, 1.0) == AgentReply(50, None)


async def test_query_without_newline_uses_what_came_before_close() -> None:
    server, port = await _agent(b"drain")
    async with server:
        assert await query_agent("127.0.0.1", port, 1.0) == AgentReply(None, AgentState.DRAIN)


async def test_silent_agent_is_no_answer_within_the_deadline() -> None:
    server, port = await _agent(b"up\n", delay=5.0)
    async with server:
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await query_agent("127.0.0.1", port, 0.3) is None
        assert loop.time() - start < 1.0


async def test_endless_line_is_cut_and_refused_port_is_no_answer() -> None:
    server, port = await _agent(b"x" * (MAX_LINE * 4))
    async with server:
        assert await query_agent("127.0.0.1", port, 1.0) is None
    assert await query_agent("127.0.0.1", port, 1.0) is None  # closed now: refused
