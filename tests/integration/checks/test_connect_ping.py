"""connect and ping checks against loopback and against addresses that never answer.

Ping needs raw sockets (root). Addresses that never answer live in a private
network namespace (tests/integration/checks/netns.py), never on the host's network.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

import pytest

from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec, CheckType, Outcome
from healthd.vocab import ServiceProtocol

from .netns import SILENT_V4, SILENT_V6, run_in_private_netns
from .servers import hang, serve

T = TypeVar("T")


def spec(kind: CheckType, address: str, port: int = 0, **kw: object) -> CheckSpec:
    base = CheckSpec(type=kind, service="none", protocol=ServiceProtocol.TCP,
                     family=6 if ":" in address else 4,
                     address=address, port=port, checktimeout=1.0)
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_connect_open_and_refused(runner: CheckRunner, address: str) -> None:
    async with serve(hang, host=address, read_head=False) as srv:
        up = await runner.run(spec(CheckType.CONNECT, address, srv.port))
    down = await runner.run(spec(CheckType.CONNECT, address, srv.port))
    assert up.ok, up
    assert not down.ok and down.detail == "connection refused"


@pytest.mark.root
@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_ping_loopback(runner: CheckRunner, address: str) -> None:
    outcome = await runner.run(spec(CheckType.PING, address, checkcount=3))
    assert outcome.ok, outcome
    assert outcome.detail == "echo reply (attempt 1 of 3)"


async def _with_runner(body: Callable[[CheckRunner], Awaitable[T]]) -> T:
    runner = CheckRunner()
    await runner.start()
    try:
        return await body(runner)
    finally:
        await runner.close()


@pytest.mark.root
@pytest.mark.parametrize("address", [SILENT_V4, SILENT_V6])
def test_ping_silent_address_uses_every_attempt_within_checktimeout(address: str) -> None:
    async def body(runner: CheckRunner) -> Outcome:
        return await runner.run(spec(CheckType.PING, address, checkcount=3, checktimeout=0.9))

    outcome = run_in_private_netns(lambda: _with_runner(body))
    assert not outcome.ok, outcome
    assert outcome.detail == "no echo reply to 3 attempts"
    assert 0.75 < outcome.latency < 1.3


@pytest.mark.root
def test_udp_virtual_connect_is_ping() -> None:
    async def body(runner: CheckRunner) -> tuple[Outcome, Outcome]:
        up = await runner.run(spec(CheckType.CONNECT, "127.0.0.1", 53, protocol=ServiceProtocol.UDP))
        down = await runner.run(spec(CheckType.CONNECT, SILENT_V4, 53, protocol=ServiceProtocol.UDP,
                                checktimeout=0.3))
        return up, down

    up, down = run_in_private_netns(lambda: _with_runner(body))
    assert up.ok and up.detail.startswith("echo reply"), up
    # silence is reported by the last attempt, or by the runner's deadline on a loaded machine
    assert not down.ok and down.detail.startswith(("no echo reply", "timed out")), down


@pytest.mark.root
def test_many_pings_at_once_share_one_socket_per_family() -> None:
    """Replies to 600 answering reals are matched to the right check; silent ones stay down."""
    answering = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(301)]
    answering.remove(SILENT_V4)

    async def body(runner: CheckRunner) -> tuple[list[Outcome], list[Outcome], int]:
        ups = [runner.run(spec(CheckType.PING, a)) for a in answering]
        ups += [runner.run(spec(CheckType.PING, "::1")) for _ in range(300)]
        downs = [runner.run(spec(CheckType.PING, a, checktimeout=0.5)) for a in (SILENT_V4, SILENT_V6) * 5]
        results = await asyncio.gather(*ups, *downs)
        return results[: len(ups)], results[len(ups):], len(runner.ctx.pinger._socks)

    ups, downs, sockets = run_in_private_netns(lambda: _with_runner(body))
    assert all(o.ok for o in ups), [(i, o) for i, o in enumerate(ups) if not o.ok][:3]
    assert not any(o.ok for o in downs), downs
    assert sockets == 2


async def test_connect_waits_for_a_slow_handshake_and_gives_up_at_the_deadline(runner: CheckRunner) -> None:
    """A full accept queue drops SYNs: the connection is set up by a retransmission, or never."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port))
        never = await runner.run(spec(CheckType.CONNECT, "127.0.0.1", port, checktimeout=0.5))
        late = asyncio.ensure_future(runner.run(spec(CheckType.CONNECT, "127.0.0.1", port, checktimeout=5)))
        await asyncio.sleep(0.3)
        for _ in range(2):  # the filler, and possibly the first check's half-open attempt
            with contextlib.suppress(BlockingIOError):
                listener.accept()[0].close()
        filler.close()
        outcome = await late
    assert not never.ok and never.detail == "timed out after 0.5 s"
    assert outcome.ok and outcome.latency > 0.5, outcome
    assert len(runner.ctx.poller) == 0  # nothing left registered
