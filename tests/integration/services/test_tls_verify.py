"""pops, imaps and ldaps verify the real's certificate as spec.tls says; a rejection says why."""

from __future__ import annotations

import datetime

import pytest
import trustme

from healthd.checks import ldap, mail, tls
from healthd.checks.context import CheckContext
from healthd.checks.tls import TlsVerify
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for

GREETINGS = {"pops": b"+OK ready\r\n", "imaps": b"* OK ready\r\n"}
LAST_WEEK = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=7)


@pytest.mark.parametrize("service", ["pops", "imaps"])
@pytest.mark.parametrize(("names", "not_after", "policy", "up", "detail"), [
    # ldirectord's default: the chain, and the real's address in the certificate
    ((), None, {}, True, "greeting"),
    (("mail.healthd.test",), None, {}, False, "TLS certificate wrong name: not valid for address 127.0.0.1"),
    ((), LAST_WEEK, {}, False, "TLS certificate expired"),
    ((), None, {"cafile": None}, False, "TLS certificate untrusted: issuer not trusted"),  # system store
    # relaxed and tightened
    (("mail.healthd.test",), None, {"verify": TlsVerify.CHAIN}, True, "greeting"),
    ((), LAST_WEEK, {"verify": TlsVerify.NONE}, True, "greeting"),
    ((), None, {"verify": TlsVerify.NONE, "cafile": None}, True, "greeting"),
    ((), None, {"verify": TlsVerify.FULL, "name": "other.example"}, False,
     "TLS certificate wrong name: not valid for name other.example"),
])
async def test_verdicts(ctx: CheckContext, service: str, names: tuple[str, ...],
                        not_after: datetime.datetime | None, policy: dict[str, object], up: bool,
                        detail: str) -> None:
    settings: dict[str, object] = {"cafile": servers.ca_file(), **policy}
    with servers.sni_recorder(GREETINGS[service], *names, not_after=not_after) as (port, _seen):
        spec = spec_for(service, port, negotiatetimeout=2.0,
                        tls=tls.resolve(service, servers.HOST, None, **settings))  # type: ignore[arg-type]
        out = await mail.check(spec, ctx)
    assert out.ok is up, out
    assert detail in out.detail, out


async def test_self_signed_is_untrusted(ctx: CheckContext, tmp_path: object) -> None:
    other = trustme.CA()  # a certificate from a CA nobody trusts, as a self-made one
    with servers.sni_recorder(GREETINGS["pops"]) as (port, _seen):
        spec = spec_for("pops", port, negotiatetimeout=2.0,
                        tls=tls.resolve("pops", servers.HOST, None, cafile=_write(other, tmp_path)))
        out = await mail.check(spec, ctx)
    assert not out.ok and out.detail.startswith("TLS certificate untrusted"), out


async def test_ldaps_default_verifies_nothing_as_ldirectord(ctx: CheckContext) -> None:
    # Net::LDAP without `verify` accepts any certificate; so does healthd unless told otherwise
    with servers.sni_recorder(b"", "nothing.example", not_after=LAST_WEEK) as (port, _seen):
        default = await ldap.check(spec_for("ldaps", port, negotiatetimeout=2.0,
                                            tls=tls.resolve("ldaps", servers.HOST, None)), ctx)
        strict = await ldap.check(spec_for("ldaps", port, negotiatetimeout=2.0, tls=tls.resolve(
            "ldaps", servers.HOST, None, verify=TlsVerify.CHAIN, cafile=servers.ca_file())), ctx)
    assert "TLS" not in default.detail, default  # the handshake passed; the recorder then speaks no LDAP
    assert not strict.ok and strict.detail == "TLS certificate expired", strict


def _write(ca: trustme.CA, directory: object) -> str:
    path = f"{directory}/other-ca.pem"
    ca.cert_pem.write_to_path(path)
    return path
