"""HTTPS session resumption against a real nginx on loopback: resumed, refused, certificate changes, failures.

nginx's answer says whether it resumed the session ("reused=r" or "reused=."), so the
checks' own `receive` proves the server's side; the runner's session counters prove ours.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import pytest
import trustme

from healthd.checks import tls
from healthd.checks.context import CheckContext
from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec
from healthd.checks.tlsresume import TlsSessions

from ..services.servers import free_port
from .conftest import http_spec
from .servers import ok, serve
from .test_https_verify import server_context
from .tls_nginx import Resumption, nginx_https

LAST_WEEK = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=7)
TICKETS_13 = Resumption(tickets=True)
TICKETS_12 = Resumption(tickets=True, protocols="TLSv1.2")
CACHE_13 = Resumption(tickets=False, cache="shared:healthdtest:1m")  # TLS 1.3 stateful tickets
SESSION_IDS_12 = Resumption(tickets=False, cache="shared:healthdtest:1m", protocols="TLSv1.2")
KINDS = {"tls1.3 tickets": TICKETS_13, "tls1.2 tickets": TICKETS_12, "tls1.3 session cache": CACHE_13,
         "tls1.2 session ids": SESSION_IDS_12}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def runner(clock: Clock) -> AsyncIterator[CheckRunner]:
    r = CheckRunner(CheckContext(sessions=TlsSessions(clock=clock)))
    await r.start()
    yield r
    await r.close()


def https(port: int, ca_file: str, receive: str | None = "good", **policy: object) -> CheckSpec:
    return http_spec(port, scheme="https", service="https", receive_re=receive,
                     tls=tls.resolve("https", "127.0.0.1", None, cafile=ca_file, **policy))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_checks_resume_the_session(runner: CheckRunner, ca: trustme.CA, ca_file: str,
                                         kind: str) -> None:
    port = free_port()
    version = KINDS[kind].protocols.split()[-1]
    with nginx_https(ca.issue_cert("127.0.0.1"), port, KINDS[kind]):
        first = await runner.run(https(port, ca_file, receive=rf"reused=\. {version}"))
        later = [await runner.run(https(port, ca_file, receive=f"reused=r {version}")) for _ in range(4)]
    assert first.ok, first  # a full handshake, as nginx saw it
    assert all(o.ok for o in later), later  # nginx resumed every later one
    assert (runner.ctx.sessions.full, runner.ctx.sessions.resumed) == (1, 4)


async def test_status_only_check_keeps_the_ticket(runner: CheckRunner, ca: trustme.CA, ca_file: str) -> None:
    # no receive: the verdict comes with the status line; the TLS 1.3 ticket arrived before it
    port = free_port()
    with nginx_https(ca.issue_cert("127.0.0.1"), port, TICKETS_13):
        outcomes = [await runner.run(https(port, ca_file, receive=None)) for _ in range(3)]
    assert all(o.ok for o in outcomes), outcomes
    assert (runner.ctx.sessions.full, runner.ctx.sessions.resumed) == (1, 2)


async def test_server_refusing_resumption_gets_full_handshakes(runner: CheckRunner, ca: trustme.CA,
                                                               ca_file: str) -> None:
    port = free_port()
    with nginx_https(ca.issue_cert("127.0.0.1"), port, Resumption(tickets=False, cache="off")):
        outcomes = [await runner.run(https(port, ca_file, receive=r"reused=\.")) for _ in range(3)]
    assert all(o.ok for o in outcomes), outcomes
    assert (runner.ctx.sessions.full, runner.ctx.sessions.resumed) == (3, 0)


@pytest.mark.parametrize("kind", [*KINDS, "tls1.3 tickets, kept ticket key"])
async def test_certificate_change_on_reload_is_seen_on_the_next_check(
        runner: CheckRunner, ca: trustme.CA, ca_file: str, kind: str) -> None:
    """nginx refuses to resume a session made under another certificate, even with a kept ticket key."""
    settings = KINDS.get(kind) or Resumption(tickets=True, ticket_key=True)
    port = free_port()
    with nginx_https(ca.issue_cert("127.0.0.1"), port, settings) as server:
        spec = https(port, ca_file)
        before = [await runner.run(spec) for _ in range(2)]
        server.reload(ca.issue_cert("127.0.0.1", not_after=LAST_WEEK))
        expired = await runner.run(spec)
        server.reload(ca.issue_cert("127.0.0.1"))
        renewed = await runner.run(spec)
    assert all(o.ok for o in before) and runner.ctx.sessions.resumed >= 1, before
    assert not expired.ok and expired.detail == "TLS certificate expired", expired
    assert renewed.ok, renewed


async def test_kept_ticket_key_resumes_across_a_reload(runner: CheckRunner, ca: trustme.CA,
                                                      ca_file: str) -> None:
    # the counterpart of the test above: the same certificate after the reload, so the ticket still counts
    port = free_port()
    cert = ca.issue_cert("127.0.0.1")
    with nginx_https(cert, port, Resumption(tickets=True, ticket_key=True)) as server:
        first = await runner.run(https(port, ca_file))
        server.reload(cert)
        after = await runner.run(https(port, ca_file, receive="reused=r"))
    assert first.ok and after.ok, (first, after)


async def test_verification_failure_stays_a_failure(runner: CheckRunner, ca: trustme.CA,
                                                    ca_file: str) -> None:
    port = free_port()
    with nginx_https(ca.issue_cert("127.0.0.1"), port, TICKETS_13) as server:
        spec = https(port, ca_file)
        before = [await runner.run(spec) for _ in range(2)]
        server.reload(trustme.CA().issue_cert("127.0.0.1"))  # a certificate from a CA nobody trusts
        after = [await runner.run(spec) for _ in range(3)]
    assert all(o.ok for o in before), before
    assert [o.detail for o in after] == ["TLS certificate untrusted: issuer not trusted"] * 3, after
    assert len(runner.ctx.sessions) == 0  # nothing kept from a refused handshake


async def test_untrusted_from_the_start_never_resumes(runner: CheckRunner, ca_file: str) -> None:
    port = free_port()
    with nginx_https(trustme.CA().issue_cert("127.0.0.1"), port, TICKETS_13):
        outcomes = [await runner.run(https(port, ca_file)) for _ in range(3)]
    assert not any(o.ok for o in outcomes), outcomes
    assert (runner.ctx.sessions.full, runner.ctx.sessions.resumed, len(runner.ctx.sessions)) == (0, 0, 0)


async def test_change_under_surviving_tickets_is_seen_at_the_age_bound(
        runner: CheckRunner, clock: Clock, ca: trustme.CA, ca_file: str) -> None:
    """A server that keeps resuming old sessions after a certificate change (Python's ssl: same context,
    same ticket keys, same session context): the change is seen once the session is MAX_AGE old."""
    server = server_context(ca, "127.0.0.1")
    async with serve(ok(b"good\n"), tls=server) as srv:
        spec = https(srv.port, ca_file)
        before = await runner.run(spec)
        ca.issue_cert("127.0.0.1", not_after=LAST_WEEK).configure_cert(server)  # the real's new certificate
        clock.now += runner.ctx.sessions.max_age - 1
        resumed = await runner.run(spec)  # the real resumes: it shows no certificate
        clock.now += 1
        expired = await runner.run(spec)  # a full handshake, and the expired certificate
        ca.issue_cert("127.0.0.1").configure_cert(server)
        renewed = await runner.run(spec)
    assert before.ok and resumed.ok and renewed.ok, (before, resumed, renewed)
    assert runner.ctx.sessions.resumed == 1
    assert not expired.ok and expired.detail == "TLS certificate expired", expired


async def test_certificate_expiry_bounds_the_session(runner: CheckRunner, clock: Clock, ca: trustme.CA,
                                                     ca_file: str) -> None:
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=20)
    async with serve(ok(b"good\n"), tls=server_context(ca, "127.0.0.1", not_after=soon)) as srv:
        spec = https(srv.port, ca_file)
        await runner.run(spec)
        clock.now += 10
        await runner.run(spec)  # resumed: the certificate is valid for ~10 s more
        clock.now += 15
        await runner.run(spec)  # past its notAfter (on our clock): verified again, in a full handshake
    assert (runner.ctx.sessions.full, runner.ctx.sessions.resumed) == (2, 1)


async def test_new_ca_file_means_a_full_handshake(runner: CheckRunner, ca: trustme.CA, ca_file: str,
                                                  tmp_path: object) -> None:
    import os
    import shutil
    from pathlib import Path

    cafile = Path(str(tmp_path)) / "ca.pem"
    shutil.copy(ca_file, cafile)
    async with serve(ok(b"good\n"), tls=server_context(ca, "127.0.0.1")) as srv:
        spec = https(srv.port, str(cafile))
        await runner.run(spec)
        await runner.run(spec)
        stat = cafile.stat()
        os.utime(cafile, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the operator rewrote tlscafile
        await runner.run(spec)  # a new context: its checks start with a full handshake
        await runner.run(spec)
    assert (runner.ctx.sessions.full, runner.ctx.sessions.resumed) == (2, 2)
