"""dns checks against dnsmasq serving a fixed zone on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from healthd.checks import dns as dns_check
from healthd.checks.context import CheckContext
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for
from tests.integration.services.hanging import assert_hang_bounded

pytestmark = pytest.mark.root  # dnsmasq drops to nobody, which only root may do


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[servers.Daemon]:
    with servers.workdir("dnsmasq") as wd:
        daemon = servers.start_dnsmasq(wd)
        yield daemon
        daemon.stop()


def dns_spec(port: int, request: str, receive: str, protocol: str = "udp", **kw: object):
    return spec_for("dns", port, protocol=protocol, request=request, receive=receive,
                    receive_re=receive or None, **kw)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
@pytest.mark.parametrize(
    ("request_", "receive", "kind"),
    [
        ("/www.healthd.test", "192.0.2.10", "A"),
        ("www.healthd.test", "2001:db8::10", "AAAA"),
        ("www.healthd.test", "2001:DB8:0:0::10", "AAAA"),
        ("/192.0.2.10", "www.healthd.test", "PTR"),
        ("www.healthd.test", "", "A"),
        ("www.healthd.test", r"192\.0\.2\.\d+", "A"),
    ],
)
async def test_answer_matches_up(dnsmasq: servers.Daemon, ctx: CheckContext, protocol: str,
                                 request_: str, receive: str, kind: str) -> None:
    out = await dns_check.check(dns_spec(dnsmasq.ports["dns"], request_, receive, protocol), ctx)
    assert out.ok, out
    assert out.detail.startswith(f"DNS {kind} ")


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_real_on_ipv6_up(dnsmasq: servers.Daemon, ctx: CheckContext, protocol: str) -> None:
    spec = dns_spec(dnsmasq.ports["dns"], "www.healthd.test", "2001:db8::10", protocol,
                    family=6, address="::1")
    out = await dns_check.check(spec, ctx)
    assert out.ok, out


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_wrong_receive_down(dnsmasq: servers.Daemon, ctx: CheckContext, protocol: str) -> None:
    spec = dns_spec(dnsmasq.ports["dns"], "www.healthd.test", "192.0.2.99", protocol)
    out = await dns_check.check(spec, ctx)
    assert not out.ok, out
    assert "192.0.2.10" in out.detail and "does not match" in out.detail


async def test_truncated_udp_answer_is_asked_again_over_tcp(dnsmasq: servers.Daemon,
                                                            ctx: CheckContext) -> None:
    out = await dns_check.check(dns_spec(dnsmasq.ports["dns"], "big.healthd.test", "192.0.2.140"), ctx)
    assert out.ok, out


async def test_regex_must_match_whole_answer(dnsmasq: servers.Daemon, ctx: CheckContext) -> None:
    out = await dns_check.check(dns_spec(dnsmasq.ports["dns"], "www.healthd.test", r"192\.0\.2\.1"), ctx)
    assert not out.ok, out


async def test_unknown_name_down(dnsmasq: servers.Daemon, ctx: CheckContext) -> None:
    out = await dns_check.check(dns_spec(dnsmasq.ports["dns"], "nowhere.healthd.test", "192.0.2.10"), ctx)
    assert not out.ok, out
    assert "NXDOMAIN" in out.detail or "no A" in out.detail


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_hanging_server_fails_at_deadline(
    dnsmasq: servers.Daemon, silent_tcp_port: int, silent_udp_port: int, ctx: CheckContext, protocol: str
) -> None:
    port = silent_udp_port if protocol == "udp" else silent_tcp_port
    silent = dns_spec(port, "www.healthd.test", "192.0.2.10", protocol, negotiatetimeout=1.5)
    healthy = dns_spec(dnsmasq.ports["dns"], "www.healthd.test", "192.0.2.10", protocol)
    await assert_hang_bounded(dns_check.check, silent, healthy, ctx)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_stopped_server_down(dnsmasq: servers.Daemon, ctx: CheckContext, protocol: str) -> None:
    dnsmasq.stop()
    spec = dns_spec(dnsmasq.ports["dns"], "www.healthd.test", "192.0.2.10", protocol, negotiatetimeout=2)
    out = await dns_check.check(spec, ctx)
    assert not out.ok, out
    # TCP is refused outright; over UDP the kernel's port-unreachable may arrive or not.
    assert out.detail == "connection refused" or (protocol == "udp" and "timed out" in out.detail), out
