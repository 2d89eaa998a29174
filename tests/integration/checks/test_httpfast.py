"""The task-free HTTP check (healthd.checks.httpfast) against real loopback servers: which specs
have it, its callback contract (once, never before launch returns, never after cancel), its
deadline, and its sockets (closed with an RST, out of the poller). The checks' answers on both
paths are covered by test_http.py, test_http_redirect.py and test_hostile.py (run both ways)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from healthd.checks import tls
from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckType, Outcome

from .conftest import http_spec
from .servers import hang, ok, serve


@pytest.fixture
async def runner() -> AsyncIterator[CheckRunner]:
    r = CheckRunner()
    await r.start()
    yield r
    await r.close()


class Verdicts:
    def __init__(self) -> None:
        self.got: list[tuple[object, Outcome]] = []
        self.arrived = asyncio.Event()

    def __call__(self, token: object, outcome: Outcome) -> None:
        self.got.append((token, outcome))
        self.arrived.set()


async def test_which_specs_have_a_task_free_form(runner: CheckRunner) -> None:
    plain = http_spec(80)
    assert runner.fast(plain) is not None
    assert runner.fast(replace(plain, service="http_proxy")) is not None
    assert runner.fast(replace(plain, httpmethod="HEAD", receive_re="ok")) is not None
    # TLS, other check types and services, and specs whose check can only fail: CheckRunner.run
    assert runner.fast(replace(plain, scheme="https", service="https",
                               tls=tls.resolve("https", "127.0.0.1", None))) is None
    assert runner.fast(replace(plain, type=CheckType.CONNECT, service="none")) is None
    assert runner.fast(replace(plain, service="simpletcp", scheme="")) is None
    assert runner.fast(replace(plain, receive_re="(")) is None
    assert runner.fast(replace(plain, request="/a\r\nX: y")) is None


async def test_verdict_comes_once_after_launch_returns(runner: CheckRunner) -> None:
    async with serve(ok(b"shop ok\n")) as srv:
        fast = runner.fast(http_spec(srv.port, request="/ok.html", receive_re="shop ok"))
        assert fast is not None
        verdicts = Verdicts()
        run = fast.launch(verdicts, "token")
        assert verdicts.got == []
        await asyncio.wait_for(verdicts.arrived.wait(), 5)
        await asyncio.sleep(0.05)
    assert verdicts.got == [("token", verdicts.got[0][1])]
    outcome = verdicts.got[0][1]
    assert outcome.ok and outcome.detail == "HTTP 200, body matched", outcome
    assert srv.heads[0].startswith(b"GET /ok.html HTTP/1.1\r\n")
    assert run.done and len(runner.ctx.poller) == 0


async def test_a_refused_connection_is_reported_later_not_inside_launch(runner: CheckRunner) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens there once closed
    fast = runner.fast(http_spec(port))
    assert fast is not None
    verdicts = Verdicts()
    fast.launch(verdicts, 1)
    assert verdicts.got == []
    await asyncio.wait_for(verdicts.arrived.wait(), 5)
    assert [(t, o.ok, o.detail) for t, o in verdicts.got] == [(1, False, "connection refused")]


async def test_deadline_gives_timed_out_and_closes_the_socket(runner: CheckRunner) -> None:
    async with serve(hang) as srv:
        fast = runner.fast(http_spec(srv.port, negotiatetimeout=0.3))
        assert fast is not None
        verdicts = Verdicts()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fast.launch(verdicts, None)
        await asyncio.wait_for(verdicts.arrived.wait(), 5)
        elapsed = loop.time() - t0
    (_, outcome), = verdicts.got
    assert not outcome.ok and outcome.detail == "timed out after 0.3 s"
    assert 0.29 < elapsed < 1.5  # one 10 ms slot late at most; the margin is for a busy machine
    assert len(runner.ctx.poller) == 0


async def test_cancel_gives_no_verdict_and_frees_the_socket(runner: CheckRunner) -> None:
    async with serve(hang) as srv:
        fast = runner.fast(http_spec(srv.port, negotiatetimeout=0.2))
        assert fast is not None
        verdicts = Verdicts()
        run = fast.launch(verdicts, None)
        await asyncio.sleep(0.05)
        assert len(runner.ctx.poller) == 1
        run.cancel()
        assert len(runner.ctx.poller) == 0
        await asyncio.sleep(0.4)  # past the deadline: still nothing
    assert verdicts.got == []


async def test_closed_sockets_leave_the_epoll_set_so_descriptors_can_be_reused(runner: CheckRunner) -> None:
    # Poller.drop skips epoll_ctl(DEL): if the kernel kept the closed descriptor registered, the
    # next socket given the same number would fail to register (EEXIST) or be watched wrongly.
    async with serve(ok()) as srv:
        fast = runner.fast(http_spec(srv.port))
        assert fast is not None
        for _ in range(200):
            verdicts = Verdicts()
            fast.launch(verdicts, None)
            await asyncio.wait_for(verdicts.arrived.wait(), 5)
            assert verdicts.got[0][1].ok, verdicts.got
    assert len(runner.ctx.poller) == 0
