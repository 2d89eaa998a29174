"""TLS session store and session hand-over: real OpenSSL handshakes over memory BIOs, a fake clock."""

from __future__ import annotations

import contextlib
import datetime
import os
import ssl
import subprocess
import sys

import pytest
import trustme

from healthd.checks import sslsession
from healthd.checks.tlsresume import TlsSessions

KEY = ("127.0.0.1", 443, "policy")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server(ca: trustme.CA, not_after: datetime.datetime | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", not_after=not_after).configure_cert(ctx)
    return ctx


def client(ca: trustme.CA, verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.check_hostname = False
    if not verify:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _step(obj: ssl.SSLObject) -> None:
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()


def exchange(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext,
             session: object | None = None) -> ssl.SSLObject:
    """One TLS 1.3 connection in memory: handshake, a request, an answer read (with the server's tickets)."""
    ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client_ctx.wrap_bio(ci, co)
    if session is not None:
        sslsession.offer(c, session)
    s = server_ctx.wrap_bio(si, so, server_side=True)
    _step(c)
    si.write(co.read())
    _step(s)
    ci.write(so.read())
    _step(c)
    c.write(b"GET / HTTP/1.1\r\n\r\n")
    si.write(co.read())
    _step(s)
    assert s.read(1024).startswith(b"GET")
    s.write(b"HTTP/1.1 200 OK\r\n\r\nok")
    ci.write(so.read())
    assert c.read(1024).endswith(b"ok")
    return c


@pytest.fixture(params=["native", "python"])
def handover(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(sslsession, "_lib", None)
    else:
        # healthd's platform (CPython 3.10-3.14 with one libssl) takes the native path: a skip here
        # would hide that path's tests, so its absence fails instead
        assert sslsession.NATIVE, "libssl cannot be called safely here (or HEALTHD_TLS_NATIVE=0 is set)"
    return str(request.param)


def test_taken_session_resumes(ca: trustme.CA, handover: str) -> None:
    cctx, sctx = client(ca), server(ca)
    first = exchange(cctx, sctx)
    session = sslsession.take(first)
    assert session is not None and (handover == "python") is isinstance(session, ssl.SSLSession)
    second = exchange(cctx, sctx, session)
    assert not first.session_reused and second.session_reused
    third = exchange(cctx, sctx, sslsession.take(second))  # the newest session (a new ticket) resumes too
    assert third.session_reused


def test_store_offers_the_newest_and_counts(ca: trustme.CA) -> None:
    store, cctx, sctx = TlsSessions(clock=Clock()), client(ca), server(ca)
    assert store.offer(KEY, cctx) is None
    store.settle(KEY, cctx, exchange(cctx, sctx))
    for _ in range(3):
        conn = exchange(cctx, sctx, store.offer(KEY, cctx))
        assert conn.session_reused
        store.settle(KEY, cctx, conn)
    assert (store.full, store.resumed, len(store)) == (1, 3, 1)


def test_failure_drops_the_session(ca: trustme.CA) -> None:
    store, cctx, sctx = TlsSessions(clock=Clock()), client(ca), server(ca)
    store.settle(KEY, cctx, exchange(cctx, sctx))
    store.settle(KEY, cctx, None)  # a failed handshake
    assert store.offer(KEY, cctx) is None and len(store) == 0


def test_session_of_another_context_is_not_offered(ca: trustme.CA) -> None:
    store, sctx = TlsSessions(clock=Clock()), server(ca)
    old, new = client(ca), client(ca)  # a tls* file changed: the context was rebuilt
    store.settle(KEY, old, exchange(old, sctx))
    assert store.offer(KEY, new) is None and len(store) == 0


def test_age_counts_from_the_full_handshake(ca: trustme.CA) -> None:
    clock = Clock()
    store, cctx, sctx = TlsSessions(max_age=60, clock=clock), client(ca), server(ca)
    store.settle(KEY, cctx, exchange(cctx, sctx))
    clock.now += 50
    resumed = exchange(cctx, sctx, store.offer(KEY, cctx))
    store.settle(KEY, cctx, resumed)  # a newer ticket, but no certificate seen: the age is not reset
    clock.now += 10
    assert resumed.session_reused and store.offer(KEY, cctx) is None


def test_certificate_expiry_shortens_the_age(ca: trustme.CA) -> None:
    clock = Clock()
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    store, cctx, sctx = TlsSessions(max_age=60, clock=clock), client(ca), server(ca, not_after=soon)
    store.settle(KEY, cctx, exchange(cctx, sctx))
    clock.now += 25
    assert store.offer(KEY, cctx) is not None
    clock.now += 6
    assert store.offer(KEY, cctx) is None


def test_unverified_policy_ignores_expiry(ca: trustme.CA) -> None:
    # tlsverify=none accepts an expired certificate: its expiry is no reason to hand-shake again
    clock = Clock()
    expired = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    store, cctx, sctx = TlsSessions(max_age=60, clock=clock), client(ca, verify=False), server(ca, expired)
    store.settle(KEY, cctx, exchange(cctx, sctx))
    clock.now += 59
    assert store.offer(KEY, cctx) is not None


def test_sweep_forgets_reals_no_longer_checked(ca: trustme.CA) -> None:
    clock = Clock()
    store, cctx, sctx = TlsSessions(max_age=60, clock=clock), client(ca), server(ca)
    store.settle(("gone", 443, "p"), cctx, exchange(cctx, sctx))
    clock.now += 120
    store.settle(KEY, cctx, exchange(cctx, sctx))  # any later handshake sweeps
    assert len(store) == 1 and store.offer(KEY, cctx) is not None


def test_environment_forces_the_fallback() -> None:
    env = {**os.environ, "HEALTHD_TLS_NATIVE": "0"}
    code = "from healthd.checks import sslsession; print(sslsession.NATIVE)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
