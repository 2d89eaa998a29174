"""SNI of the TLS services: `virtualhost` when no name is checked; the checked name under tlsverify=full."""

from __future__ import annotations

import pytest

from healthd.checks import ldap, mail, tls
from healthd.checks.context import CheckContext
from healthd.checks.tls import TlsVerify
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for

SERVICES = [(mail, "pops", b"+OK ready\r\n"), (mail, "imaps", b"* OK ready\r\n"), (ldap, "ldaps", b"")]


@pytest.mark.parametrize(("module", "service", "greeting"), SERVICES)
@pytest.mark.parametrize("virtualhost", ["mail.healthd.test", None])
@pytest.mark.parametrize("verify", [TlsVerify.CHAIN, TlsVerify.NONE])
async def test_sni_follows_virtualhost(ctx: CheckContext, module: object, service: str, greeting: bytes,
                                       virtualhost: str | None, verify: TlsVerify) -> None:
    with servers.sni_recorder(greeting) as (port, seen):
        policy = tls.resolve(service, servers.HOST, virtualhost, verify=verify, cafile=servers.ca_file())
        spec = spec_for(service, port, virtualhost=virtualhost, negotiatetimeout=2.0, tls=policy)
        out = await module.check(spec, ctx)  # type: ignore[attr-defined]
    assert seen == [virtualhost], (seen, out)  # an IP literal is no name: no SNI without virtualhost
    if service != "ldaps":  # the recorder speaks no LDAP; for pops/imaps its greeting is enough
        assert out.ok, out


@pytest.mark.parametrize(("module", "service", "greeting"), SERVICES[:2])
async def test_default_pops_imaps_check_the_address_and_send_no_sni(ctx: CheckContext, module: object,
                                                                    service: str, greeting: bytes) -> None:
    # as ldirectord's IO::Socket::SSL: the certificate must name the address; virtualhost plays no part
    with servers.sni_recorder(greeting) as (port, seen):
        out = await module.check(spec_for(service, port, virtualhost="mail.healthd.test"), ctx)  # type: ignore[attr-defined]
    assert seen == [None], seen
    assert out.ok, out


@pytest.mark.parametrize(("module", "service", "greeting"), SERVICES[:2])
async def test_full_sends_and_checks_tlsname(ctx: CheckContext, module: object, service: str,
                                             greeting: bytes) -> None:
    with servers.sni_recorder(greeting) as (port, seen):
        policy = tls.resolve(service, servers.HOST, "lb.healthd.test", verify=TlsVerify.FULL,
                             name="imap.healthd.test", cafile=servers.ca_file())
        out = await module.check(spec_for(service, port, tls=policy), ctx)  # type: ignore[attr-defined]
    assert seen == ["imap.healthd.test"], seen
    assert out.ok, out  # *.healthd.test covers it
