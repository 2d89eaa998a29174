"""sip checks (OPTIONS over UDP and TCP) against kamailio on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from healthd.checks import sip
from healthd.checks.context import CheckContext
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for
from tests.integration.services.hanging import assert_hang_bounded

pytestmark = pytest.mark.root  # kamailio is started as root (it may change user)


@pytest.fixture(scope="module")
def kamailio() -> Iterator[servers.Daemon]:
    with servers.workdir("kamailio") as wd:
        daemon = servers.start_kamailio(wd)
        yield daemon
        daemon.stop()


def sip_spec(port: int, protocol: str, **kw: object):
    return spec_for("sip", port, protocol=protocol, **kw)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
@pytest.mark.parametrize("login", ["", "healthd@127.0.0.1", "sip:check@lb.example"])
async def test_options_answered_200_up(kamailio: servers.Daemon, ctx: CheckContext,
                                       protocol: str, login: str) -> None:
    out = await sip.check(sip_spec(kamailio.ports["sip"], protocol, login=login), ctx)
    assert out.ok, out
    assert "200 OK" in out.detail


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_real_on_ipv6_up(kamailio: servers.Daemon, ctx: CheckContext, protocol: str) -> None:
    spec = sip_spec(kamailio.ports["sip"], protocol, family=6, address="::1")
    out = await sip.check(spec, ctx)
    assert out.ok, out


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_busy_answer_down(kamailio: servers.Daemon, ctx: CheckContext, protocol: str) -> None:
    spec = sip_spec(kamailio.ports["sip"], protocol, login=f"{servers.SIP_BUSY_USER}@127.0.0.1")
    out = await sip.check(spec, ctx)
    assert not out.ok, out
    assert "486" in out.detail


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_hanging_server_fails_at_deadline(kamailio: servers.Daemon, silent_tcp_port: int,
                                                silent_udp_port: int, ctx: CheckContext,
                                                protocol: str) -> None:
    port = silent_udp_port if protocol == "udp" else silent_tcp_port
    silent = sip_spec(port, protocol, negotiatetimeout=1.5)
    await assert_hang_bounded(sip.check, silent, sip_spec(kamailio.ports["sip"], protocol), ctx)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_stopped_server_down(kamailio: servers.Daemon, ctx: CheckContext, protocol: str) -> None:
    kamailio.stop()
    out = await sip.check(sip_spec(kamailio.ports["sip"], protocol, negotiatetimeout=2), ctx)
    assert not out.ok, out
    # Loopback reports the closed UDP port at once (ICMP port unreachable), like TCP's refusal.
    assert out.detail == "connection refused", out.detail
