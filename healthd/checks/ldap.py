"""Negotiate check for service=ldap and ldaps: bind, read the base entry `request`, match its DN.

As in ldirectord: a simple bind when both `login` (a DN) and `passwd` are set,
otherwise an anonymous bind; then a base-scope search of `request` for
(objectClass=*) that must return exactly one entry, whose DN must match
`receive` when it is set. ldaps speaks TLS from the first byte, verified as
spec.tls says (healthd.checks.tls; by default not at all, as ldirectord's Net::LDAP;
`virtualhost` is sent as SNI).

ldap3 is a blocking library, so the dialogue runs in a worker thread; its
connect and receive timeouts are set from the deadline, so the thread ends on
its own even after the runner has given up on it. The threads come from a pool
of their own, large enough that silent LDAP servers cannot queue the checks of
healthy ones (or anybody else's asyncio.to_thread work) behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import ssl

import ldap3
from ldap3.core.exceptions import LDAPException

from healthd import threads
from healthd.checks.context import CheckContext
from healthd.checks.dialog import CheckFailed, bounded, excerpt, strip_slash
from healthd.checks.spec import CheckSpec, Outcome
from healthd.checks.tls import policy_of

# A silent server holds a thread for about one deadline; this many can hang at
# once before a healthy check has to wait for a thread.
LDAP_THREADS = 64
_pool = threads.pool(LDAP_THREADS, "healthd-ldap")

# ---- pure logic ----------------------------------------------------------


def search_base(spec: CheckSpec) -> str:
    """The DN to read: `request` without ldirectord's leading "/"."""
    return strip_slash(spec.request).strip()


def uses_simple_bind(spec: CheckSpec) -> bool:
    """ldirectord binds with credentials only when both are set; anything else binds anonymously."""
    return bool(spec.login and spec.passwd)


def dn_matches(dn: str, receive_re: str | None) -> bool:
    if receive_re is None:
        return True
    try:
        return re.search(receive_re, dn) is not None
    except re.error:
        return False


def judge_entries(dns: list[str], base: str, receive_re: str | None) -> str:
    """The success detail for a base search that found `dns`, or CheckFailed."""
    if len(dns) != 1:
        raise CheckFailed(f"LDAP search of {base!r} found {len(dns)} entries, not exactly one")
    if not dn_matches(dns[0], receive_re):
        raise CheckFailed(f"LDAP entry {excerpt(dns[0])} does not match receive")
    return f"LDAP entry {excerpt(dns[0])} found"


# ---- the exchange (in a worker thread) -----------------------------------


class _PolicyTls(ldap3.Tls):  # type: ignore[misc]
    """ldap3's TLS hook, wrapping the socket with healthd's own SSLContext for the check's policy.

    ldap3's own Tls always matches the certificate against the server's address once
    any verification is on; healthd's policy (chain only, or a given name) needs the
    context to decide, as for every other TLS check.
    """

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        super().__init__()
        self._context = context
        self._server_hostname = server_hostname
        self.error: ssl.SSLError | None = None  # the handshake's failure, as the ssl module raised it

    def wrap_socket(self, connection: ldap3.Connection, do_handshake: bool = False) -> None:
        try:
            connection.socket = self._context.wrap_socket(
                connection.socket, server_side=False, do_handshake_on_connect=do_handshake,
                server_hostname=self._server_hostname)
        except ssl.SSLError as exc:
            self.error = exc
            raise


def _ldap_blocking(spec: CheckSpec, tls: _PolicyTls | None) -> str:
    # ldap3 packs the receive timeout as a C long: whole seconds, rounded up.
    timeout = max(1, math.ceil(spec.deadline))
    server = ldap3.Server(
        spec.address, port=spec.port, use_ssl=spec.service == "ldaps", tls=tls,
        connect_timeout=timeout, get_info=ldap3.NONE,
    )
    simple = uses_simple_bind(spec)
    conn = ldap3.Connection(
        server,
        user=spec.login if simple else None,
        password=spec.passwd if simple else None,
        authentication=ldap3.SIMPLE if simple else ldap3.ANONYMOUS,
        receive_timeout=timeout, raise_exceptions=False, auto_bind=ldap3.AUTO_BIND_NONE,
    )
    base = search_base(spec)
    try:
        conn.open()
        if not conn.bind():
            result = conn.result or {}
            raise CheckFailed(f"LDAP bind failed: {result.get('description', 'no reply')}"
                              f" {excerpt(str(result.get('message', '')))}".rstrip())
        found = conn.search(base, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[])
        if not found and (conn.result or {}).get("result") not in (0, None):
            result = conn.result or {}
            raise CheckFailed(f"LDAP search of {base!r} failed: {result.get('description')}")
        entries = [e["dn"] for e in conn.response or [] if e.get("type") == "searchResEntry"]
        return judge_entries(entries, base, spec.receive_re)
    except LDAPException as exc:
        if tls is not None and tls.error is not None:
            raise tls.error from exc  # ldap3 rewraps it without the reason a certificate was refused
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            raise cause from exc
        text = str(exc)
        if "timed out" in text or "timeout" in text.lower():
            raise TimeoutError(text) from exc
        if "refused" in text.lower():
            raise ConnectionRefusedError(text) from exc
        raise CheckFailed(f"LDAP: {excerpt(text, 120)}") from exc
    finally:
        # Closing a broken connection must not hide the verdict.
        with contextlib.suppress(Exception):
            conn.unbind()


async def _ldap(spec: CheckSpec, ctx: CheckContext) -> str:
    # An empty base (the default request "/") reads the root DSE, as ldirectord does.
    tls = None
    if spec.service == "ldaps":
        policy = policy_of(spec.service, spec.address, spec.virtualhost, spec.tls)
        tls = _PolicyTls(await ctx.tls.context(policy), policy.server_hostname)
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool, _ldap_blocking, spec, tls)
    except (CheckFailed, OSError):
        raise
    except Exception as exc:
        # ldap3 lets decoding errors of a garbled reply escape as anything; all mean "not healthy".
        raise CheckFailed(f"LDAP: unreadable reply ({type(exc).__name__}: {excerpt(str(exc))})") from exc


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    """Negotiate check for service=ldap/ldaps; never raises for a server's behaviour."""
    return await bounded(spec, lambda: _ldap(spec, ctx))
