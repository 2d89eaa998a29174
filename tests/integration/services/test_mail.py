"""smtp, submission, pop, pops, imap, imaps, nntp checks against exim, dovecot and an NNTP responder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from healthd.checks import mail
from healthd.checks.context import CheckContext
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for
from tests.integration.services.hanging import assert_hang_bounded

pytestmark = pytest.mark.root  # exim and dovecot switch users; only root may start them


@pytest.fixture(scope="module")
def exim() -> Iterator[servers.Daemon]:
    with servers.workdir("exim") as wd:
        daemon = servers.start_exim(wd)
        yield daemon
        daemon.stop()


@pytest.fixture(scope="module")
def dovecot() -> Iterator[servers.Daemon]:
    with servers.workdir("dovecot") as wd:
        daemon = servers.start_dovecot(wd)
        yield daemon
        daemon.stop()


@pytest.fixture(scope="module")
def nntpd() -> Iterator[servers.Daemon]:
    with servers.workdir("nntp") as wd:
        daemon = servers.start_nntp(wd, "200 news.healthd.test ready")
        yield daemon
        daemon.stop()


@pytest.fixture(scope="module")
def nntpd_busy() -> Iterator[servers.Daemon]:
    with servers.workdir("nntp-busy") as wd:
        daemon = servers.start_nntp(wd, "400 too busy, come back later")
        yield daemon
        daemon.stop()


USER = {"login": servers.MAIL_USER, "passwd": servers.MAIL_PASSWORD}


@pytest.mark.parametrize("service", ["smtp", "submission"])
async def test_smtp_up(exim: servers.Daemon, ctx: CheckContext, service: str) -> None:
    out = await mail.check(spec_for(service, exim.ports[service], virtualhost="lb.healthd.test"), ctx)
    assert out.ok, out
    assert "EHLO" in out.detail


@pytest.mark.parametrize("service", ["smtp", "submission"])
async def test_smtp_over_ipv6_up(exim: servers.Daemon, ctx: CheckContext, service: str) -> None:
    out = await mail.check(spec_for(service, exim.ports[service], family=6, address="::1"), ctx)
    assert out.ok, out


@pytest.mark.parametrize("service", ["pop", "pops", "imap", "imaps"])
async def test_greeting_only_up(dovecot: servers.Daemon, ctx: CheckContext, service: str) -> None:
    out = await mail.check(spec_for(service, dovecot.ports[service]), ctx)
    assert out.ok, out
    assert "greeting" in out.detail


@pytest.mark.parametrize("service", ["pop", "pops", "imap", "imaps"])
async def test_login_up(dovecot: servers.Daemon, ctx: CheckContext, service: str) -> None:
    out = await mail.check(spec_for(service, dovecot.ports[service], **USER), ctx)
    assert out.ok, out
    assert "login accepted" in out.detail


@pytest.mark.parametrize("service", ["pops", "imaps"])
async def test_tls_with_sni(dovecot: servers.Daemon, ctx: CheckContext, service: str) -> None:
    spec = spec_for(service, dovecot.ports[service], virtualhost="mail.healthd.test", **USER)
    out = await mail.check(spec, ctx)
    assert out.ok, out


@pytest.mark.parametrize("service", ["pop", "pops", "imap", "imaps"])
async def test_wrong_password_down(dovecot: servers.Daemon, ctx: CheckContext, service: str) -> None:
    spec = spec_for(service, dovecot.ports[service], login=servers.MAIL_USER, passwd="not it")
    out = await mail.check(spec, ctx)
    assert not out.ok, out
    assert "refused" in out.detail
    assert "not it" not in out.detail


@pytest.mark.parametrize("service", ["pops", "imaps"])
async def test_tls_service_on_plain_port_down(dovecot: servers.Daemon, ctx: CheckContext,
                                              service: str) -> None:
    plain = {"pops": "pop", "imaps": "imap"}[service]
    out = await mail.check(spec_for(service, dovecot.ports[plain]), ctx)
    assert not out.ok, out


async def test_pop_against_imap_port_down(dovecot: servers.Daemon, ctx: CheckContext) -> None:
    out = await mail.check(spec_for("pop", dovecot.ports["imap"]), ctx)
    assert not out.ok, out
    assert "POP3 greeting" in out.detail


async def test_imap_against_smtp_port_down(exim: servers.Daemon, ctx: CheckContext) -> None:
    out = await mail.check(spec_for("imap", exim.ports["smtp"]), ctx)
    assert not out.ok, out
    assert "IMAP greeting" in out.detail


async def test_smtp_against_pop_port_down(dovecot: servers.Daemon, ctx: CheckContext) -> None:
    out = await mail.check(spec_for("smtp", dovecot.ports["pop"]), ctx)
    assert not out.ok, out


async def test_nntp_up(nntpd: servers.Daemon, ctx: CheckContext) -> None:
    out = await mail.check(spec_for("nntp", nntpd.ports["nntp"]), ctx)
    assert out.ok, out
    assert "200" in out.detail


async def test_nntp_busy_down(nntpd_busy: servers.Daemon, ctx: CheckContext) -> None:
    out = await mail.check(spec_for("nntp", nntpd_busy.ports["nntp"]), ctx)
    assert not out.ok, out
    assert "400" in out.detail


@pytest.mark.parametrize("service", ["smtp", "submission", "pop", "pops", "imap", "imaps", "nntp"])
async def test_hanging_server_fails_at_deadline(
    exim: servers.Daemon, silent_tcp_port: int, ctx: CheckContext, service: str
) -> None:
    silent = spec_for(service, silent_tcp_port, negotiatetimeout=1.5)
    healthy = spec_for("smtp", exim.ports["smtp"])
    await assert_hang_bounded(mail.check, silent, healthy, ctx)


# The stopped-service tests stop the module's servers, so they come last.
@pytest.mark.parametrize("service", ["smtp", "submission"])
async def test_stopped_smtp_down(exim: servers.Daemon, ctx: CheckContext, service: str) -> None:
    exim.stop()
    out = await mail.check(spec_for(service, exim.ports[service]), ctx)
    assert not out.ok
    assert out.detail == "connection refused"


@pytest.mark.parametrize("service", ["pop", "pops", "imap", "imaps"])
async def test_stopped_dovecot_down(dovecot: servers.Daemon, ctx: CheckContext, service: str) -> None:
    dovecot.stop()
    out = await mail.check(spec_for(service, dovecot.ports[service], **USER), ctx)
    assert not out.ok
    assert out.detail == "connection refused"


async def test_stopped_nntp_down(nntpd: servers.Daemon, ctx: CheckContext) -> None:
    nntpd.stop()
    out = await mail.check(spec_for("nntp", nntpd.ports["nntp"]), ctx)
    assert not out.ok
    assert out.detail == "connection refused"
