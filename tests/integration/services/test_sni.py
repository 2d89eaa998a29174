"""The TLS services send `virtualhost` as SNI, and no SNI without it (an IP literal is not a name)."""

from __future__ import annotations

import pytest

from healthd.checks import ldap, mail
from healthd.checks.context import CheckContext
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for


@pytest.mark.parametrize(
    ("module", "service", "greeting"),
    [(mail, "pops", b"+OK ready\r\n"), (mail, "imaps", b"* OK ready\r\n"), (ldap, "ldaps", b"")],
)
@pytest.mark.parametrize("virtualhost", ["mail.healthd.test", None])
async def test_sni_follows_virtualhost(ctx: CheckContext, module: object, service: str, greeting: bytes,
                                       virtualhost: str | None) -> None:
    with servers.sni_recorder(greeting) as (port, seen):
        spec = spec_for(service, port, virtualhost=virtualhost, negotiatetimeout=2.0)
        out = await module.check(spec, ctx)  # type: ignore[attr-defined]
    assert seen == [virtualhost], (seen, out)
    if service != "ldaps":  # the recorder speaks no LDAP; for pops/imaps its greeting is enough
        assert out.ok, out
