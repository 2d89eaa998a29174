"""HTTP, HTTPS and http_proxy checks against real servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
from aiohttp import web

from healthd.checks import tls
from healthd.checks.runner import CheckRunner

from .conftest import http_spec
from .servers import ok, reply, serve


@pytest.fixture
def runner(either_runner: CheckRunner) -> CheckRunner:
    """Every check here runs both ways: as a task and on the scheduler's task-free path."""
    return either_runner


async def test_200_is_up_and_request_is_as_configured(runner: CheckRunner) -> None:
    async with serve(ok()) as srv:
        outcome = await runner.run(http_spec(srv.port, request="/health?deep=1"))
    assert outcome.ok, outcome
    head = srv.heads[0].decode()
    assert head.startswith("GET /health?deep=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{srv.port}\r\n" in head
    assert "Connection: close\r\n" in head


@pytest.mark.parametrize(("status", "up"), [("204 No Content", True), ("299 Odd", True),
                                            ("301 Moved Permanently", False), ("404 Not Found", False),
                                            ("500 Internal Server Error", False)])
async def test_only_a_final_2xx_is_up(runner: CheckRunner, status: str, up: bool) -> None:
    headers = "Location: http://127.0.0.1:1/\r\n" if status.startswith("3") else ""
    async with serve(ok(status=status, body=b"" if status.startswith("204") else b"x",
                        headers=headers)) as srv:
        outcome = await runner.run(http_spec(srv.port))
    assert outcome.ok is up, outcome
    assert srv.connections == 1  # a redirect is not followed
    if not up:
        assert outcome.detail.startswith(f"HTTP {status[:3]}")


async def test_receive_is_searched_in_the_body(runner: CheckRunner) -> None:
    async with serve(ok(b"<html>status: GREEN since boot</html>")) as srv:
        assert (await runner.run(http_spec(srv.port, receive_re=r"status: (GREEN|AMBER)"))).ok
        missing = await runner.run(http_spec(srv.port, receive_re="RED"))
    assert not missing.ok and "did not match" in missing.detail


async def test_receive_beyond_the_body_limit_is_not_seen(runner: CheckRunner) -> None:
    body = b"a" * (runner.ctx.body_limit + 10) + b"MARKER"
    async with serve(ok(body)) as srv:
        outcome = await runner.run(http_spec(srv.port, receive_re="MARKER"))
    assert not outcome.ok and "first 65536 bytes" in outcome.detail


async def test_body_is_decoded_leniently(runner: CheckRunner) -> None:
    async with serve(ok(b"\xff\xfe caf\xc3\xa9 ok")) as srv:
        assert (await runner.run(http_spec(srv.port, receive_re="café ok"))).ok


async def test_head_request(runner: CheckRunner) -> None:
    # a HEAD answer has headers announcing a body that never comes
    async with serve(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")) as srv:
        outcome = await runner.run(http_spec(srv.port, httpmethod="HEAD"))
    assert outcome.ok, outcome
    assert srv.heads[0].startswith(b"HEAD / HTTP/1.1\r\n")


async def test_virtualhost_is_the_host_header(runner: CheckRunner) -> None:
    async with serve(ok()) as srv:
        assert (await runner.run(http_spec(srv.port, virtualhost="www.example.org"))).ok
    assert b"\r\nHost: www.example.org\r\n" in srv.heads[0]


async def test_ipv6_real_in_brackets(runner: CheckRunner) -> None:
    async with serve(ok(), host="::1") as srv:
        outcome = await runner.run(http_spec(srv.port, address="::1"))
    assert outcome.ok, outcome
    assert f"\r\nHost: [::1]:{srv.port}\r\n".encode() in srv.heads[0]


async def test_refused(runner: CheckRunner) -> None:
    async with serve(ok()) as srv:
        port = srv.port
    outcome = await runner.run(http_spec(port))
    assert not outcome.ok and outcome.detail == "connection refused"


async def test_http_proxy_gets_an_absolute_url(runner: CheckRunner) -> None:
    async with serve(ok()) as srv:
        outcome = await runner.run(http_spec(srv.port, service="http_proxy",
                                             request="http://www.example.org/ping"))
    assert outcome.ok, outcome
    head = srv.heads[0].decode()
    assert head.startswith("GET http://www.example.org/ping HTTP/1.1\r\n")
    assert "Host: www.example.org\r\n" in head


async def test_aiohttp_server_chunked_body(runner: CheckRunner) -> None:
    """A real HTTP stack's chunked response, streamed in several writes."""
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"first part, ", b"second part, ", b"healthd-ok"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/stream", handler)
    app_runner = web.AppRunner(app)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        outcome = await runner.run(http_spec(port, request="/stream", receive_re="second.*healthd-ok"))
        missing = await runner.run(http_spec(port, request="/nowhere"))
    finally:
        await app_runner.cleanup()
    assert outcome.ok, outcome
    assert not missing.ok and missing.detail.startswith("HTTP 404")


async def test_https_with_sni_chain_verified_name_not(runner: CheckRunner, server_tls: ssl.SSLContext,
                                                    ca_file: str) -> None:
    # Debian's ldirectord (LWP, verify_hostname => 0): the CA must be trusted, the name may be anything
    async with serve(ok(b"secure ok"), tls=server_tls) as srv:
        with_vhost = await runner.run(http_spec(srv.port, scheme="https", service="https",
                                                virtualhost="other.example", receive_re="secure",
                                                tls=tls.resolve("https", "127.0.0.1", "other.example",
                                                                cafile=ca_file)))
        by_address = await runner.run(http_spec(srv.port, scheme="https", service="https",
                                                tls=tls.resolve("https", "127.0.0.1", None, cafile=ca_file)))
    assert with_vhost.ok, with_vhost
    assert by_address.ok, by_address
    assert srv.sni[0] == "other.example"
    assert srv.sni[1] is None  # no SNI for an IP address
    assert b"\r\nHost: other.example\r\n" in srv.heads[0]


async def test_slow_connection_setup_is_waited_for(runner: CheckRunner) -> None:
    """connect() still in progress when the check wants to send: it waits for writability.

    A listening socket with a full accept queue drops SYNs, so the check's connection
    is only set up by a SYN retransmission (about a second later), after the server
    has started accepting again.
    """
    loop = asyncio.get_running_loop()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port))  # fills the accept queue
        check = asyncio.ensure_future(runner.run(http_spec(port, negotiatetimeout=5.0)))
        await asyncio.sleep(0.3)
        first, _ = await loop.sock_accept(listener)
        first.close()
        filler.close()
        conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 4)
        with conn:
            request = await loop.sock_recv(conn, 4096)
            await loop.sock_sendall(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            outcome = await check
    assert request.startswith(b"GET / HTTP/1.1\r\n")
    assert outcome.ok, outcome
    assert outcome.latency > 0.5  # it really went through a retransmitted SYN
