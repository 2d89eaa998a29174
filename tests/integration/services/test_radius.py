"""radius checks against freeradius with one PAP user on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from healthd.checks import radius
from healthd.checks.context import CheckContext
from healthd.vocab import ServiceProtocol
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for
from tests.integration.services.hanging import assert_hang_bounded

pytestmark = pytest.mark.root  # freeradius is started as root and drops to freerad


@pytest.fixture(scope="module")
def freeradius() -> Iterator[servers.Daemon]:
    with servers.workdir("freeradius") as wd:
        daemon = servers.start_freeradius(wd)
        yield daemon
        daemon.stop()


def radius_spec(port: int, receive: str = "", **kw: object):
    fields = {"login": servers.RADIUS_USER, "passwd": servers.RADIUS_PASSWORD,
              "secret": servers.RADIUS_SECRET, **kw}
    return spec_for("radius", port, protocol=ServiceProtocol.UDP,
                    receive=receive, receive_re=receive or None, **fields)


async def test_access_accept_up(freeradius: servers.Daemon, ctx: CheckContext) -> None:
    out = await radius.check(radius_spec(freeradius.ports["radius"]), ctx)
    assert out.ok, out
    assert out.detail == "RADIUS Access-Accept"


async def test_access_accept_required_and_given_up(freeradius: servers.Daemon, ctx: CheckContext) -> None:
    out = await radius.check(radius_spec(freeradius.ports["radius"], receive="Access-Accept"), ctx)
    assert out.ok, out


async def test_access_reject_is_up_like_ldirectord(freeradius: servers.Daemon, ctx: CheckContext) -> None:
    out = await radius.check(radius_spec(freeradius.ports["radius"], passwd="not the password"), ctx)
    assert out.ok, out
    assert out.detail == "RADIUS Access-Reject"


async def test_access_reject_down_when_accept_required(freeradius: servers.Daemon, ctx: CheckContext) -> None:
    spec = radius_spec(freeradius.ports["radius"], receive="Access-Accept", passwd="not the password")
    out = await radius.check(spec, ctx)
    assert not out.ok, out
    assert "Access-Reject does not match receive" in out.detail


async def test_wrong_secret_down(freeradius: servers.Daemon, ctx: CheckContext) -> None:
    out = await radius.check(radius_spec(freeradius.ports["radius"], secret="guessed-secret",
                                         negotiatetimeout=2), ctx)
    assert not out.ok, out
    # FreeRADIUS drops a request whose Message-Authenticator fails; an older one answers with
    # a reply we cannot verify. Either way the real is down.
    assert "timed out" in out.detail or "wrong secret" in out.detail, out.detail
    assert "guessed" not in out.detail


async def test_missing_secret_down(ctx: CheckContext) -> None:
    out = await radius.check(radius_spec(1812, secret=""), ctx)
    assert not out.ok
    assert "need secret" in out.detail


async def test_hanging_server_fails_at_deadline(freeradius: servers.Daemon, silent_udp_port: int,
                                                ctx: CheckContext) -> None:
    silent = radius_spec(silent_udp_port, negotiatetimeout=1.5)
    await assert_hang_bounded(radius.check, silent, radius_spec(freeradius.ports["radius"]), ctx)


async def test_stopped_server_down(freeradius: servers.Daemon, ctx: CheckContext) -> None:
    freeradius.stop()
    out = await radius.check(radius_spec(freeradius.ports["radius"], negotiatetimeout=2), ctx)
    assert not out.ok, out
    assert out.detail == "connection refused", out.detail
