"""TLS towards real servers: what to verify (TlsPolicy, resolved once by config) and the SSLContexts for it.

The one home of the TLS rules of the checks: each service's default (what Debian 12's
ldirectord does), which name a certificate must carry, the SNI sent, and the contexts
(shared per policy, never per check). The sentence a refused certificate gives is in
healthd.checks.failures, with every other failure sentence.

What ldirectord 4.12 does on Debian 12, read from its code and the Perl libraries it
uses, and tried against loopback servers with self-signed, private-CA and wrong-name
certificates:
- https (LWP::UserAgent with `verify_hostname => 0`): the chain is verified against the
  system store (or PERL_LWP_SSL_CA_FILE / HTTPS_CA_FILE, PERL_LWP_SSL_CA_PATH /
  HTTPS_CA_DIR); the name is not checked.
- pops (Mail::POP3Client), imaps (Net::IMAP::Simple::SSL): IO::Socket::SSL's defaults,
  so the chain is verified against the system store (SSL_CERT_FILE / SSL_CERT_DIR) and
  the certificate must name the real's IP address; no SNI (an address is no name).
- ldaps (Net::LDAP without `verify`): nothing is verified.
- smtp, submission: no TLS (ldirectord's Net::SMTP does not STARTTLS, neither does healthd).
ldirectord does a full handshake on every check; healthd resumes the real's TLS session
when it can, and verifies the certificate the real shows at least once a minute and
whenever the real refuses to resume (healthd.checks.tlsresume says when and why).
"""

from __future__ import annotations

import asyncio
import enum
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from healthd.checks import failures

TLS_SERVICES: frozenset[str] = frozenset({"https", "pops", "imaps", "ldaps"})


class TlsVerify(enum.StrEnum):
    """`tlsverify=`: how much of a real's certificate is checked."""

    NONE = "none"  # nothing: any certificate is accepted
    CHAIN = "chain"  # signed by a trusted CA, valid today; any name
    FULL = "full"  # chain, and the certificate names `TlsPolicy.name`


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """How one check speaks TLS; part of the check's identity (CheckSpec.tls)."""

    verify: TlsVerify
    name: str | None = None  # FULL: the name (or IP address) the certificate must carry
    sni: str | None = None  # NONE/CHAIN: the server name sent (FULL sends `name`)
    cafile: str | None = None  # trusted CAs; with neither cafile nor capath: the system store
    capath: str | None = None
    certfile: str | None = None  # client certificate for mutual TLS (key inside, or in keyfile)
    keyfile: str | None = None

    @property
    def server_hostname(self) -> str | None:
        """What the handshake is told: the SNI sent and, under FULL, the name checked.

        An IP address is checked against the certificate's IP entries and sends no SNI
        (TLS has no SNI for addresses); Python's ssl does both from this one value.
        """
        if self.verify is TlsVerify.FULL:
            return self.name
        return self.sni

    def describe(self) -> str:
        """A short summary for check-config: "chain (system store)", "full: www.example.com (ca.pem)"."""
        store = "system store" if not (self.cafile or self.capath) else (self.cafile or self.capath)
        if self.verify is TlsVerify.NONE:
            what = "none"
        elif self.verify is TlsVerify.CHAIN:
            what = f"chain ({store})"
        else:
            what = f"full: {self.name} ({store})"
        return what + (f", client certificate {self.certfile}" if self.certfile else "")


# ---- defaults: Debian 12's ldirectord, service by service ----------------------------------

_LWP_CA_FILE = ("PERL_LWP_SSL_CA_FILE", "HTTPS_CA_FILE")
_LWP_CA_PATH = ("PERL_LWP_SSL_CA_PATH", "HTTPS_CA_DIR")


def default_verify(service: str) -> TlsVerify:
    """ldirectord's verification for a TLS service (see the module's first lines)."""
    if service in ("pops", "imaps"):
        return TlsVerify.FULL
    if service == "ldaps":
        return TlsVerify.NONE
    return TlsVerify.CHAIN  # https


def _first_env(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if environ.get(name):
            return environ[name]
    return None


def resolve(service: str, address: str, virtualhost: str | None, *, verify: TlsVerify | None = None,
            name: str | None = None, cafile: str | None = None, certfile: str | None = None,
            keyfile: str | None = None, environ: Mapping[str, str] | None = None) -> TlsPolicy:
    """The policy of one check: the `tls*` directives given (None = not set), else ldirectord's.

    The name under FULL: `tlsname`, else `virtualhost`, else the real's address. When
    tlsverify is not set, pops and imaps check the real's address as ldirectord does
    (it never looks at virtualhost there). https without tlscafile reads LWP's CA
    variables from healthd's environment, as ldirectord's LWP would.
    """
    environ = os.environ if environ is None else environ
    explicit = verify is not None
    mode = verify if verify is not None else default_verify(service)
    capath = None
    if cafile is None and service == "https":
        cafile = _first_env(environ, _LWP_CA_FILE)
        capath = _first_env(environ, _LWP_CA_PATH)
    # unless told otherwise, pops/imaps check the address ldirectord connected to
    checked = (name or virtualhost or address) if explicit or name else address
    return TlsPolicy(verify=mode, name=checked if mode is TlsVerify.FULL else None,
                     sni=name or virtualhost or None, cafile=cafile, capath=capath,
                     certfile=certfile, keyfile=keyfile)


def policy_of(service: str, address: str, virtualhost: str | None, policy: TlsPolicy | None) -> TlsPolicy:
    """`policy` as the config resolved it, else (a spec made without the config layer) the default."""
    return policy if policy is not None else resolve(service, address, virtualhost)


# ---- contexts ------------------------------------------------------------------------------


def build_context(policy: TlsPolicy) -> ssl.SSLContext:
    """A client SSLContext for `policy`; raises OSError/ssl.SSLError for unreadable files."""
    # with cafile/capath only those CAs count (as LWP's SSL_ca_file), else the system store
    capath = policy.capath if policy.cafile or policy.capath else _system_capath()
    ctx = ssl.create_default_context(cafile=policy.cafile, capath=capath)
    ctx.check_hostname = policy.verify is TlsVerify.FULL
    # Python 3.13 turns on X.509 strict mode; ldirectord's OpenSSL checks without it
    ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    if policy.verify is TlsVerify.NONE:
        ctx.verify_mode = ssl.CERT_NONE
    if policy.certfile:
        ctx.load_cert_chain(policy.certfile, policy.keyfile)
    return ctx


def _system_capath() -> str | None:
    """The system store as OpenSSL's hashed directory, read lazily during verification.

    The same CAs as the bundle file (update-ca-certificates writes both), without parsing
    all of them up front. None (load the default paths, bundle included) when the
    directory has no hashed certificates or SSL_CERT_FILE names another bundle than
    the system's own.
    """
    paths = ssl.get_default_verify_paths()
    own_bundle = os.environ.get(paths.openssl_cafile_env)
    if own_bundle and os.path.realpath(own_bundle) != os.path.realpath(paths.openssl_cafile):
        return None
    capath = paths.capath or paths.openssl_capath
    try:
        if capath and any(_HASHED.fullmatch(name) for name in os.listdir(capath)):
            return capath
    except OSError:
        pass
    return None


_HASHED = re.compile(r"[0-9a-f]{8}\.\d+")


def _stamp(path: str | None) -> int:
    if not path:
        return 0
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


class TlsSetupError(Exception):
    """The check's own TLS files (tlscafile, tlscert, tlskey) cannot be used; the message is the detail."""


class TlsContexts:
    """SSLContexts shared by every check with the same policy files; rebuilt when a file changes.

    Only the settings are shared: each check still does its own handshake and
    verification. Loading a CA store takes 0.1-0.8 s of CPU (the system bundle), so a
    context is built in a worker thread, once, while the event loop goes on checking;
    checks needing it meanwhile wait for that one build. A file that became unreadable
    since the config was loaded makes that check fail with a clear detail.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[object, ...], ssl.SSLContext] = {}
        self._building: dict[tuple[object, ...], asyncio.Future[ssl.SSLContext]] = {}

    @staticmethod
    def _key(policy: TlsPolicy) -> tuple[object, ...]:
        return (policy.verify, policy.cafile, policy.capath, policy.certfile, policy.keyfile,
                _stamp(policy.cafile), _stamp(policy.certfile), _stamp(policy.keyfile))

    async def context(self, policy: TlsPolicy) -> ssl.SSLContext:
        """The context for `policy`; raises TlsSetupError if its files cannot be read."""
        key = self._key(policy)
        ctx = self._cache.get(key)
        if ctx is not None:
            return ctx
        return await asyncio.shield(self._build(key, policy))  # a cancelled check leaves the build running

    def prepare(self) -> None:
        """Start building the system-store contexts (the defaults), so the first checks need not wait."""
        for verify in (TlsVerify.CHAIN, TlsVerify.FULL):
            policy = TlsPolicy(verify)
            key = self._key(policy)
            if key not in self._cache:
                self._build(key, policy)

    def _build(self, key: tuple[object, ...], policy: TlsPolicy) -> asyncio.Future[ssl.SSLContext]:
        building = self._building.get(key)
        if building is None:
            building = asyncio.ensure_future(asyncio.to_thread(_build_or_explain, policy))
            self._building[key] = building
            building.add_done_callback(lambda done: self._built(key, done))
        return building

    def _built(self, key: tuple[object, ...], done: asyncio.Future[ssl.SSLContext]) -> None:
        self._building.pop(key, None)
        if not done.cancelled() and done.exception() is None:  # a failure is reported to its waiters
            if len(self._cache) > 64:  # old stamps of changed files: drop them all
                self._cache.clear()
            self._cache[key] = done.result()


def _build_or_explain(policy: TlsPolicy) -> ssl.SSLContext:
    try:
        return build_context(policy)
    except OSError as exc:  # ssl.SSLError too: a file that is no PEM, a key that does not fit
        reason = f"{getattr(exc, 'reason', None) or exc.strerror or exc}"
        where = f": {exc.filename}" if exc.filename else ""
        raise TlsSetupError(failures.tls_unusable(reason + where)) from exc
