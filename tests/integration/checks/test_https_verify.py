"""HTTPS certificate verification against TLS servers on loopback: defaults, relaxed, tightened, mTLS."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
import trustme

from healthd.checks import tls
from healthd.checks.context import CheckContext
from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec
from healthd.checks.tls import TlsVerify
from healthd.checks.tlsresume import TlsSessions

from .conftest import http_spec
from .servers import ok, serve

LAST_WEEK = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=7)


def server_context(ca: trustme.CA, *names: str, not_after: datetime.datetime | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, not_after=not_after).configure_cert(ctx)
    return ctx


def https(port: int, **policy: object) -> CheckSpec:
    vhost = policy.pop("virtualhost", None)
    return http_spec(port, scheme="https", service="https", virtualhost=vhost, receive_re="good",
                     tls=tls.resolve("https", "127.0.0.1", vhost, **policy))  # type: ignore[arg-type]


@pytest.mark.parametrize(("names", "not_after", "policy", "up", "detail"), [
    (("www.example.org",), None, {}, True, "body matched"),  # chain only: any name
    (("127.0.0.1",), LAST_WEEK, {}, False, "TLS certificate expired"),
    (("www.example.org",), None, {"cafile": None}, False, "TLS certificate untrusted: issuer not trusted"),
    (("www.example.org",), None, {"verify": TlsVerify.FULL, "virtualhost": "www.example.org"}, True, "match"),
    (("www.example.org",), None, {"verify": TlsVerify.FULL, "virtualhost": "shop.example.org"}, False,
     "TLS certificate wrong name: not valid for name shop.example.org"),
    (("www.example.org",), None, {"verify": TlsVerify.FULL}, False,
     "TLS certificate wrong name: not valid for address 127.0.0.1"),
    (("www.example.org",), None, {"verify": TlsVerify.FULL, "name": "www.example.org",
                                  "virtualhost": "shop.example.org"}, True, "matched"),
    (("127.0.0.1",), LAST_WEEK, {"verify": TlsVerify.NONE, "cafile": None}, True, "matched"),
])
async def test_verdicts(runner: CheckRunner, ca: trustme.CA, ca_file: str, names: tuple[str, ...],
                        not_after: datetime.datetime | None, policy: dict[str, object], up: bool,
                        detail: str) -> None:
    settings: dict[str, object] = {"cafile": ca_file, **policy}
    async with serve(ok(), tls=server_context(ca, *names, not_after=not_after)) as srv:
        outcome = await runner.run(https(srv.port, **settings))
    assert outcome.ok is up, outcome
    assert detail in outcome.detail, outcome


async def test_self_signed_is_untrusted(runner: CheckRunner, ca_file: str) -> None:
    async with serve(ok(), tls=server_context(trustme.CA(), "127.0.0.1")) as srv:
        outcome = await runner.run(https(srv.port, cafile=ca_file))
    assert not outcome.ok and outcome.detail.startswith("TLS certificate untrusted"), outcome


async def test_certificate_change_is_seen_on_the_next_full_handshake(ca: trustme.CA, ca_file: str) -> None:
    # sessions never resumed (age bound 0), so every check verifies what the real shows; with resumption
    # against this server (its tickets survive the change), see test_https_resume
    runner = CheckRunner(CheckContext(sessions=TlsSessions(max_age=0)))
    await runner.start()
    server = server_context(ca, "127.0.0.1")
    spec = https(0, cafile=ca_file)
    async with serve(ok(), tls=server) as srv:
        spec = https(srv.port, cafile=ca_file)
        before = await runner.run(spec)
        ca.issue_cert("127.0.0.1", not_after=LAST_WEEK).configure_cert(server)  # the real's new certificate
        expired = await runner.run(spec)
        ca.issue_cert("127.0.0.1").configure_cert(server)
        renewed = await runner.run(spec)
    await runner.close()
    assert before.ok and renewed.ok, (before, renewed)
    assert not expired.ok and expired.detail == "TLS certificate expired", expired


async def test_mutual_tls(runner: CheckRunner, ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    server = server_context(ca, "127.0.0.1")
    server.verify_mode = ssl.CERT_REQUIRED  # the real asks for a client certificate from the same CA
    server.load_verify_locations(ca_file)
    client = ca.issue_cert("healthd.lb.example")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    async with serve(ok(), tls=server) as srv:
        with_cert = await runner.run(https(srv.port, cafile=ca_file, certfile=str(cert), keyfile=str(key)))
        without = await runner.run(https(srv.port, cafile=ca_file))
    assert with_cert.ok, with_cert
    assert not without.ok, without  # the real ends the handshake (TLS 1.3: after ours completed)
    assert len(srv.heads) == 1  # only the check with a certificate got its request through


async def test_unreadable_ca_file_at_check_time(runner: CheckRunner, ca: trustme.CA, tmp_path: Path) -> None:
    # valid at load, then removed: the check says so (the next reload reports the line)
    async with serve(ok(), tls=server_context(ca, "127.0.0.1")) as srv:
        outcome = await runner.run(https(srv.port, cafile=str(tmp_path / "gone.pem")))
    assert not outcome.ok and outcome.detail.startswith("TLS settings unusable"), outcome
    assert "gone.pem" in outcome.detail or "No such file" in outcome.detail, outcome


async def test_from_the_config_file_to_the_check(runner: CheckRunner, ca: trustme.CA, ca_file: str) -> None:
    from healthd.config import parse_text

    text = ("virtual=192.0.2.1:443\n\treal=127.0.0.1:{port} masq\n\tservice=https\n\trequest=\"/\"\n"
            "\treceive=\"good\"\n\tvirtualhost=www.example.org\n" + f"\ttlscafile={ca_file}\n")
    async with serve(ok(), tls=server_context(ca, "www.example.org")) as srv:
        text = text.replace("{port}", str(srv.port))
        default = parse_text(text, "t.cf").virtuals[0].reals[0].check
        tight = text + "\ttlsverify=full\n\ttlsname=shop.example.org\n"
        full = parse_text(tight, "t.cf").virtuals[0].reals[0].check
        up = await runner.run(default)
        wrong_name = await runner.run(full)
    assert up.ok, up
    assert wrong_name.detail == "TLS certificate wrong name: not valid for name shop.example.org", wrong_name
