"""The tls* directives (healthd extensions): their values, and each TLS check's policy, checked at load.

`tlsverify=none|chain|full`, `tlscafile=`, `tlsname=`, `tlscert=`, `tlskey=`, global or per
virtual (the virtual's value wins). None is set in an ldirectord file, so each TLS
service then verifies what Debian's ldirectord verifies (healthd.checks.tls.default_verify).
The files are read once at load: one that is missing, unreadable or not what it should
be (a CA bundle, a certificate whose key fits) is an error naming its line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from healthd.checks import tls
from healthd.checks.tls import TlsPolicy, TlsVerify
from healthd.config import values as v
from healthd.config.lexer import quote

DIRECTIVES = ("tlsverify", "tlscafile", "tlsname", "tlscert", "tlskey")


def verify_mode(value: str) -> TlsVerify:
    try:
        return TlsVerify(v.unquote(value).lower())
    except ValueError:
        raise v.Invalid("expected none (accept any certificate), chain (signed by a trusted CA) "
                        "or full (chain, and the certificate names tlsname)") from None


def readable_file(value: str) -> str:
    path = v.text(value)
    if not path.startswith("/"):
        raise v.Invalid("expected an absolute path")
    if not os.path.isfile(path):
        raise v.Invalid(f"{path} does not exist or is not a file")
    if not os.access(path, os.R_OK):
        raise v.Invalid(f"{path} is not readable")
    return path


def name(value: str) -> str:
    """tlsname: a host name or an IP address (IPv6 with or without brackets)."""
    return v.host_name(value).strip("[]")


# effective Setting of a directive for one virtual: its own, else the global one; None if unset
Lookup = Callable[[str], Any]
Report = Callable[[int, str], None]


class PolicyBuilder:
    """Builds each TLS check's policy; loads every distinct set of files once, reporting failures."""

    def __init__(self, error: Report) -> None:
        self._error = error
        self._loaded: dict[tuple[str | None, str | None, str | None], bool] = {}
        # LWP's CA variables, read per check: a plain copy, as os.environ's misses cost ~10 us each
        self._environ = dict(os.environ)

    def policy(self, service: str, address: str, virtualhost: str | None, lookup: Lookup) -> TlsPolicy | None:
        """The policy for a check of `service` (https, pops, imaps, ldaps); None if its files are unusable."""
        def value(directive: str) -> Any:
            setting = lookup(directive)
            return None if setting is None else setting.value

        policy = tls.resolve(service, address, virtualhost, verify=value("tlsverify"), name=value("tlsname"),
                             cafile=value("tlscafile"), certfile=value("tlscert"), keyfile=value("tlskey"),
                             environ=self._environ)
        files = (value("tlscafile"), value("tlscert"), value("tlskey"))
        if files == (None, None, None):
            return policy
        if files not in self._loaded:
            self._loaded[files] = self._load(files, lookup)
        return policy if self._loaded[files] else None

    def warn_unused(self, service: str, settings: dict[str, Any], warn: Report) -> None:
        """A tls* directive in a section whose service speaks no TLS does nothing: say so."""
        if service in tls.TLS_SERVICES or service == "http":  # http: a real's request may be https://
            return
        for directive in DIRECTIVES:
            if directive in settings:
                warn(settings[directive].line, f"{directive} has no effect: service={service} speaks no TLS "
                                               f"(healthd checks TLS for https, pops, imaps and ldaps)")

    def _load(self, files: tuple[str | None, str | None, str | None], lookup: Lookup) -> bool:
        cafile, certfile, keyfile = files
        if keyfile and not certfile:
            self._report(lookup("tlskey"), "tlskey needs tlscert (the client certificate it belongs to)")
            return False
        if cafile:
            try:
                tls.build_context(TlsPolicy(TlsVerify.CHAIN, cafile=cafile))
            except (OSError, ValueError) as exc:
                self._report(lookup("tlscafile"), f"tlscafile {cafile}: no CA certificate could be read "
                                                  f"({_reason(exc)})")
                return False
        if certfile:
            try:
                tls.build_context(TlsPolicy(TlsVerify.NONE, certfile=certfile, keyfile=keyfile))
            except (OSError, ValueError) as exc:
                pair = f"tlscert {certfile}" + (f" with tlskey {keyfile}" if keyfile else "")
                self._report(lookup("tlscert"), f"{pair}: not a usable client certificate and key "
                                                f"({_reason(exc)})")
                return False
        return True

    def _report(self, setting: Any, message: str) -> None:
        self._error(setting.line, f"{message}: {quote(setting.text)}")


def _reason(exc: BaseException) -> str:
    reason = str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)
    if "PEM lib" in reason or reason == "PEM_LIB":  # OpenSSL's words for "no PEM certificate, or no key"
        return "not PEM, or no private key in it or in tlskey"
    return reason.lower().replace("_", " ")
