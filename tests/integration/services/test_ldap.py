"""ldap and ldaps checks against slapd with a small seeded directory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from healthd.checks import ldap
from healthd.checks.context import CheckContext
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for
from tests.integration.services.hanging import assert_hang_bounded

pytestmark = pytest.mark.root  # slapd reads its TLS key and binds as root here


@pytest.fixture(scope="module")
def slapd() -> Iterator[servers.Daemon]:
    with servers.workdir("slapd") as wd:
        daemon = servers.start_slapd(wd)
        yield daemon
        daemon.stop()


PEOPLE = f"/ou=people,{servers.LDAP_SUFFIX}"
CREDS = {"login": servers.LDAP_BIND_DN, "passwd": servers.LDAP_PASSWORD}


def ldap_spec(service: str, port: int, request: str = PEOPLE, receive: str = "", **kw: object):
    return spec_for(service, port, request=request, receive=receive, receive_re=receive or None, **kw)


@pytest.mark.parametrize("service", ["ldap", "ldaps"])
@pytest.mark.parametrize("creds", [{}, CREDS], ids=["anonymous", "simple"])
@pytest.mark.parametrize("receive", ["", "^ou=people", "dc=healthd"])
async def test_base_entry_up(slapd: servers.Daemon, ctx: CheckContext, service: str,
                             creds: dict[str, str], receive: str) -> None:
    out = await ldap.check(ldap_spec(service, slapd.ports[service], receive=receive, **creds), ctx)
    assert out.ok, out
    assert "ou=people" in out.detail


async def test_root_dse_by_default_up(slapd: servers.Daemon, ctx: CheckContext) -> None:
    out = await ldap.check(ldap_spec("ldap", slapd.ports["ldap"], request="/"), ctx)
    assert out.ok, out


async def test_ldaps_with_sni_up(slapd: servers.Daemon, ctx: CheckContext) -> None:
    spec = ldap_spec("ldaps", slapd.ports["ldaps"], virtualhost="ldap.healthd.test", **CREDS)
    out = await ldap.check(spec, ctx)
    assert out.ok, out


@pytest.mark.parametrize("service", ["ldap", "ldaps"])
async def test_wrong_password_down(slapd: servers.Daemon, ctx: CheckContext, service: str) -> None:
    spec = ldap_spec(service, slapd.ports[service], login=servers.LDAP_BIND_DN, passwd="guess")
    out = await ldap.check(spec, ctx)
    assert not out.ok, out
    assert "bind failed" in out.detail and "invalidCredentials" in out.detail
    assert "guess" not in out.detail


async def test_wrong_receive_down(slapd: servers.Daemon, ctx: CheckContext) -> None:
    out = await ldap.check(ldap_spec("ldap", slapd.ports["ldap"], receive="^cn=nobody"), ctx)
    assert not out.ok, out
    assert "does not match" in out.detail


async def test_missing_entry_down(slapd: servers.Daemon, ctx: CheckContext) -> None:
    spec = ldap_spec("ldap", slapd.ports["ldap"], request=f"/ou=gone,{servers.LDAP_SUFFIX}")
    out = await ldap.check(spec, ctx)
    assert not out.ok, out
    assert "noSuchObject" in out.detail or "0 entries" in out.detail


async def test_ldaps_against_plain_port_down(slapd: servers.Daemon, ctx: CheckContext) -> None:
    out = await ldap.check(ldap_spec("ldaps", slapd.ports["ldap"]), ctx)
    assert not out.ok, out


@pytest.mark.parametrize("service", ["ldap", "ldaps"])
async def test_hanging_server_fails_at_deadline(slapd: servers.Daemon, silent_tcp_port: int,
                                                ctx: CheckContext, service: str) -> None:
    silent = ldap_spec(service, silent_tcp_port, negotiatetimeout=1.5)
    await assert_hang_bounded(ldap.check, silent, ldap_spec("ldap", slapd.ports["ldap"]), ctx)


async def test_many_silent_servers_do_not_starve_a_healthy_one(slapd: servers.Daemon,
                                                                ctx: CheckContext) -> None:
    # More silent servers than the default thread pool has workers on a small machine.
    silent_count = 12
    with contextlib.ExitStack() as stack:
        ports = [stack.enter_context(servers.silent_tcp()) for _ in range(silent_count)]
        silent = [asyncio.create_task(ldap.check(ldap_spec("ldap", port, negotiatetimeout=1.5), ctx))
                  for port in ports]
        await asyncio.sleep(0.3)  # the silent checks hold their threads first
        healthy = ldap.check(ldap_spec("ldap", slapd.ports["ldap"], negotiatetimeout=1.5), ctx)
        results = await asyncio.wait_for(asyncio.gather(healthy, *silent), 15)
    assert results[0].ok, results[0]
    assert all(not r.ok and "timed out" in r.detail for r in results[1:]), results[1:]


@pytest.mark.parametrize("service", ["ldap", "ldaps"])
async def test_stopped_server_down(slapd: servers.Daemon, ctx: CheckContext, service: str) -> None:
    slapd.stop()
    out = await ldap.check(ldap_spec(service, slapd.ports[service]), ctx)
    assert not out.ok, out
    assert out.detail == "connection refused", out.detail
