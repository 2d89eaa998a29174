"""The sentences a failed check reports: one list, so that one failure reads the same in every check type.

Operators grep the journal (`journalctl -u healthd -g "timed out"`): a refused
connection is "connection refused" whether HTTP, SMTP or a plain connect found it.
A check with something protocol-specific to say (an HTTP status, an SMTP reply)
says it in its own words; everything a socket or a clock can do goes through here.
"""

from __future__ import annotations

import ssl

REFUSED = "connection refused"
RESET = "connection reset by the server"
CLOSED = "connection closed by the server"


def timed_out(seconds: float) -> str:
    """No verdict within the check's deadline (the runner's or, as a last guard, the scheduler's)."""
    return f"timed out after {seconds:g} s"


def tls_failed(exc: ssl.SSLError) -> str:
    return f"TLS failed: {getattr(exc, 'reason', None) or exc}"


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
