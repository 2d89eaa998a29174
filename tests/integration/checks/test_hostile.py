"""Hostile real servers: each check fails by its deadline, and a healthy real checked at the
same time in the same event loop stays on time, with memory bounded.

Twenty checks of the hostile server (a separate process, as it would be another
machine) run at once while a healthy real is checked every 20 ms; margins are
generous (the machine is shared), the behaviour is not.
"""

from __future__ import annotations

import asyncio

import pytest

from healthd.checks.runner import CheckRunner

from .conftest import alongside, http_spec
from .servers import hang, ok, serve, serve_elsewhere


@pytest.fixture
def runner(either_runner: CheckRunner) -> CheckRunner:
    """Every check here runs both ways: as a task and on the scheduler's task-free path."""
    return either_runner

DEADLINE = 1.0
PERIOD = 0.02
MEMORY_BOUND = 16 * 1024 * 1024  # tracemalloc peak, 20 hostile checks in flight: generous


async def _against(runner: CheckRunner, behaviour: str, **spec_kw: object) -> tuple[list[str], float]:
    async with serve(ok(), host="127.0.0.2") as good, serve_elsewhere(behaviour) as bad:
        hostile = http_spec(bad.port, negotiatetimeout=DEADLINE, **spec_kw)
        healthy = http_spec(good.port, address="127.0.0.2", receive_re="all good")
        result = await alongside(runner, hostile, healthy, copies=20, period=PERIOD)
    result.assert_unharmed(DEADLINE, PERIOD)
    assert result.peak_bytes < MEMORY_BOUND, result.peak_bytes
    return [o.detail for o in result.hostile], max(o.latency for o in result.hostile)


async def test_accept_and_hang(runner: CheckRunner) -> None:
    details, slowest = await _against(runner, "hang")
    assert set(details) == {"timed out after 1 s"}
    assert slowest >= DEADLINE - 0.05


async def test_slow_drip_head(runner: CheckRunner) -> None:
    details, _ = await _against(runner, "drip-head")
    assert set(details) == {"timed out after 1 s"}


async def test_slow_drip_body_when_receive_needs_it(runner: CheckRunner) -> None:
    details, _ = await _against(runner, "drip-body", receive_re="never")
    assert set(details) == {"timed out after 1 s"}


async def test_endless_body_is_cut_at_the_limit(runner: CheckRunner) -> None:
    details, slowest = await _against(runner, "endless", receive_re="healthd-ok")
    assert all("first 65536 bytes of body did not match" in d for d in details), details[:2]
    assert slowest < DEADLINE  # decided at the limit, not at the deadline


async def test_garbage_instead_of_http(runner: CheckRunner) -> None:
    details, slowest = await _against(runner, "garbage")
    assert all(d.startswith("not an HTTP response") for d in details), details[:2]
    assert slowest < DEADLINE  # recognised at once, although the server keeps the connection open


async def test_connection_reset(runner: CheckRunner) -> None:
    details, _ = await _against(runner, "reset")
    assert set(details) == {"connection reset by the server"}


async def test_tls_handshake_failure(runner: CheckRunner) -> None:
    details, slowest = await _against(runner, "not-tls", scheme="https", service="https")
    assert all(d.startswith("TLS failed") for d in details), details[:2]
    assert slowest < DEADLINE


async def test_tls_handshake_that_hangs(runner: CheckRunner) -> None:
    details, _ = await _against(runner, "hang-before-tls", scheme="https", service="https")
    assert set(details) == {"timed out after 1 s"}


@pytest.mark.parametrize("copies", [200])
async def test_many_hanging_checks_do_not_leak_sockets(runner: CheckRunner, copies: int) -> None:
    import os

    before = len(os.listdir("/proc/self/fd"))
    async with serve(hang) as bad:
        outcomes = await asyncio.gather(*(runner.run(http_spec(bad.port, negotiatetimeout=0.5))
                                          for _ in range(copies)))
    assert not any(o.ok for o in outcomes)
    await asyncio.sleep(0.1)
    assert len(os.listdir("/proc/self/fd")) <= before + 2
