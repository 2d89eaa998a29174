"""The sentences a failed check reports: one list, so that one failure reads the same in every check type.

Operators grep the journal (`journalctl -u healthd -g "timed out"`): a refused
connection is "connection refused" whether HTTP, SMTP or a plain connect found it.
A check with something protocol-specific to say (an HTTP status, an SMTP reply)
says it in its own words; everything a socket or a clock can do goes through here.
"""

from __future__ import annotations

import re
import ssl

REFUSED = "connection refused"
RESET = "connection reset by the server"
CLOSED = "connection closed by the server"


def timed_out(seconds: float) -> str:
    """No verdict within the check's deadline (the runner's or, as a last guard, the scheduler's)."""
    return f"timed out after {seconds:g} s"


def tls_failed(exc: ssl.SSLError) -> str:
    """A failed TLS handshake; a refused certificate says expired, untrusted or wrong name."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return certificate_rejected(exc)
    return f"TLS failed: {getattr(exc, 'reason', None) or exc}"


_UNTRUSTED = {
    2: "its issuer's certificate is not available",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
    18: "self-signed",  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    19: "self-signed CA not trusted",  # X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
    20: "issuer not trusted",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "issuer not trusted",  # X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
}
_QUOTED = re.compile(r"'([^']*)'")


def certificate_rejected(exc: ssl.SSLCertVerificationError) -> str:
    """`TLS certificate expired`, `... untrusted: self-signed`, `... wrong name: not valid for name X`."""
    code = exc.verify_code
    if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        return "TLS certificate expired"
    if code == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
        return "TLS certificate not yet valid"
    if code in _UNTRUSTED:
        return f"TLS certificate untrusted: {_UNTRUSTED[code]}"
    if code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
        # OpenSSL's message quotes the name: "Hostname mismatch, certificate is not valid for 'x'."
        quoted = _QUOTED.search(exc.verify_message or "")
        kind = "address" if code == 64 else "name"
        return f"TLS certificate wrong name: not valid for {kind} {quoted.group(1) if quoted else '?'}"
    return f"TLS certificate rejected: {exc.verify_message or getattr(exc, 'reason', None) or exc}"


def tls_unusable(reason: str) -> str:
    """The check's own TLS files (tlscafile, tlscert, tlskey) cannot be used."""
    return f"TLS settings unusable: {reason}"


def connection_failed(exc: BaseException) -> str:
    """Any other socket error: `connection failed: no route to host`."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"connection failed: {reason.lower()}"


def crashed(exc: BaseException) -> str:
    """A bug in a check module: the check fails, naming the exception, and healthd carries on."""
    return f"check failed unexpectedly: {type(exc).__name__}: {exc}"


def of_exception(exc: BaseException) -> str:
    """The sentence for an exception a connection raised."""
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, ConnectionResetError):
        return RESET
    if isinstance(exc, ssl.SSLError):
        return tls_failed(exc)
    return connection_failed(exc)
