"""HTTP redirects against loopback servers: followed as ldirectord's LWP does, but only on this real."""

from __future__ import annotations

import pytest

from healthd.checks import tls
from healthd.checks.runner import CheckRunner

from .conftest import http_spec
from .servers import ok, redirect, routed, serve


@pytest.fixture
def runner(either_runner: CheckRunner) -> CheckRunner:
    """Every check here runs both ways: as a task and on the scheduler's task-free path."""
    return either_runner


@pytest.mark.parametrize("status", ["301 Moved Permanently", "302 Found", "303 See Other",
                                    "307 Temporary Redirect", "308 Permanent Redirect"])
async def test_redirect_to_a_matching_page_is_up(runner: CheckRunner, status: str) -> None:
    pages = routed({"/": redirect("/ok.html", status), "/ok.html": ok(b"shop ok\n")})
    async with serve(pages) as srv:
        outcome = await runner.run(http_spec(srv.port, request="/", receive_re="shop ok"))
    assert outcome.ok, outcome
    assert outcome.detail == "HTTP 200, body matched (after 1 redirect)"
    assert [h.split(b"\r\n", 1)[0] for h in srv.heads] == [b"GET / HTTP/1.1", b"GET /ok.html HTTP/1.1"]


async def test_redirect_to_a_page_that_does_not_match_is_down(runner: CheckRunner) -> None:
    pages = routed({"/": redirect("/maintenance.html"), "/maintenance.html": ok(b"back soon\n")})
    async with serve(pages) as srv:
        outcome = await runner.run(http_spec(srv.port, request="/", receive_re="shop ok"))
    assert not outcome.ok and outcome.detail.startswith("HTTP 200, body did not match"), outcome


async def test_chain_of_seven_is_followed_eight_is_too_many(runner: CheckRunner) -> None:
    table = {f"/{i}": redirect(f"/{i + 1}") for i in range(8)}
    table["/7"] = ok(b"end of seven\n")
    table["/8"] = ok(b"end of eight\n")
    seven = routed(table)
    async with serve(seven) as srv:
        outcome = await runner.run(http_spec(srv.port, request="/0", receive_re="end"))
    assert outcome.ok and outcome.detail.endswith("(after 7 redirects)"), outcome
    table["/7"] = redirect("/8")
    async with serve(routed(table)) as srv:
        outcome = await runner.run(http_spec(srv.port, request="/0", receive_re="end"))
    assert not outcome.ok and outcome.detail == "HTTP 302 after 7 redirects: too many (ldirectord's limit)", \
        outcome
    assert len(srv.heads) == 8  # the eighth redirect was not followed


async def test_loop_fails_at_once(runner: CheckRunner) -> None:
    async with serve(routed({"/a": redirect("/b"), "/b": redirect("/a")})) as srv:
        outcome = await runner.run(http_spec(srv.port, request="/a"))
    assert not outcome.ok and outcome.detail == "HTTP 302 redirect loop: back to /a", outcome
    assert len(srv.heads) == 2


async def test_redirect_to_another_host_sends_nothing_there(runner: CheckRunner) -> None:
    async with serve(ok(b"other real\n"), host="127.0.0.2") as other:
        elsewhere = f"http://127.0.0.2:{other.port}/"
        async with serve(routed({"/": redirect(elsewhere)})) as srv:
            outcome = await runner.run(http_spec(srv.port, request="/", receive_re="real"))
    assert not outcome.ok, outcome
    assert outcome.detail == f"HTTP 302 to {elsewhere} not followed: another host or port than this real"
    assert other.connections == 0


async def test_absolute_location_naming_the_virtualhost_stays_on_this_real(runner: CheckRunner) -> None:
    # the server names itself by the Host it was asked for; healthd asks the same real again (no DNS)
    pages = routed({"/": redirect("http://www.example.org/home"), "/home": ok(b"home ok\n")})
    async with serve(pages) as srv:
        outcome = await runner.run(http_spec(srv.port, request="/", virtualhost="www.example.org",
                                             receive_re="home ok"))
    assert outcome.ok, outcome
    assert all(b"\r\nHost: www.example.org\r\n" in head for head in srv.heads)


async def test_http_to_https_is_not_followed(runner: CheckRunner) -> None:
    async with serve(routed({"/": redirect("https://www.example.org/", "301 Moved Permanently")})) as srv:
        outcome = await runner.run(http_spec(srv.port, request="/", virtualhost="www.example.org"))
    assert not outcome.ok and "another scheme" in outcome.detail, outcome


async def test_head_is_followed(runner: CheckRunner) -> None:
    async with serve(routed({"/": redirect("/ok"), "/ok": ok()})) as srv:
        outcome = await runner.run(http_spec(srv.port, request="/", httpmethod="HEAD"))
    assert outcome.ok, outcome
    assert srv.heads[1].startswith(b"HEAD /ok HTTP/1.1")


async def test_https_redirect_on_the_same_real(runner: CheckRunner, server_tls: object, ca_file: str) -> None:
    async with serve(routed({"/": redirect("/ok"), "/ok": ok(b"tls ok\n")}), tls=server_tls) as srv:  # type: ignore[arg-type]
        outcome = await runner.run(http_spec(srv.port, scheme="https", service="https", request="/",
                                             receive_re="tls ok",
                                             tls=tls.resolve("https", "127.0.0.1", None, cafile=ca_file)))
    assert outcome.ok and outcome.detail.endswith("(after 1 redirect)"), outcome


async def test_proxy_is_asked_for_the_new_url(runner: CheckRunner) -> None:
    proxy = routed({"http://www.example.org/": redirect("/ok"),
                    "http://www.example.org/ok": ok(b"via proxy\n")})
    async with serve(proxy) as srv:
        outcome = await runner.run(http_spec(srv.port, service="http_proxy", request="http://www.example.org/",
                                             receive_re="via proxy"))
    assert outcome.ok, outcome
    assert b"\r\nHost: www.example.org\r\n" in srv.heads[1]
