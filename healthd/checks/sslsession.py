"""Taking a TLS session from a connection and offering it to the next, without CPython's per-use copy.

Why: CPython's `SSLObject.session` getter and setter each copy the session through
DER (i2d/d2i, a workaround for an OpenSSL 1.1.0 bug), which re-parses the real's
certificate: about 0.2 ms of CPU each way, as much as the rest of a resumed handshake's
client work (bench/tls_results.md). libssl's SSL_SESSION_dup copies a session in memory
(the certificate by reference) and SSL_set_session counts a reference. So, when it is
safe, this module calls them through ctypes on the SSL pointer of Python's SSLObject;
otherwise it uses Python's API (the same sessions, slower).

Safe means, checked once: a CPython whose object layout is known (PySSLSocket and
PySSLContext start with their SSL* / SSL_CTX* right after the object header), exactly
one libssl mapped in the process and it is the version the ssl module reports, and, on a
throw-away SSLObject, libssl confirms that the SSL* read belongs to the SSL_CTX* read.
HEALTHD_TLS_NATIVE=0 in the environment forces the fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import ssl
import sys
from typing import Any

_SSL_OFFSET = object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)  # after PyObject_HEAD and `Socket`
_CTX_OFFSET = object.__basicsize__  # right after PyObject_HEAD


class NativeSession:
    """One reference to a libssl SSL_SESSION, released when this object goes."""

    __slots__ = ("ptr",)

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr

    def __del__(self) -> None:
        if _lib is not None and self.ptr:
            _lib.SSL_SESSION_free(self.ptr)
            self.ptr = 0


def _ssl_ptr(tls: ssl.SSLObject) -> int:
    return ctypes.c_void_p.from_address(id(tls._sslobj) + _SSL_OFFSET).value or 0  # type: ignore[attr-defined]


def _ctx_ptr(context: ssl.SSLContext) -> int:
    return ctypes.c_void_p.from_address(id(context) + _CTX_OFFSET).value or 0


def _load() -> Any:
    """libssl through ctypes if every safety check passes, else None."""
    if os.environ.get("HEALTHD_TLS_NATIVE", "1") == "0" or sys.implementation.name != "cpython":
        return None
    if not (3, 10) <= sys.version_info[:2] <= (3, 14):
        return None
    if object.__basicsize__ != 2 * ctypes.sizeof(ctypes.c_void_p):  # a debug build's header is larger
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libssl.so" in line}
        if len(paths) != 1:
            return None
        lib = ctypes.CDLL(paths.pop())
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
            return None
        lib.SSL_get_session.restype = ctypes.c_void_p
        lib.SSL_get_session.argtypes = [ctypes.c_void_p]
        lib.SSL_SESSION_dup.restype = ctypes.c_void_p
        lib.SSL_SESSION_dup.argtypes = [ctypes.c_void_p]
        lib.SSL_set_session.restype = ctypes.c_int
        lib.SSL_set_session.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.SSL_SESSION_free.restype = None
        lib.SSL_SESSION_free.argtypes = [ctypes.c_void_p]
        lib.SSL_get_SSL_CTX.restype = ctypes.c_void_p
        lib.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
        probe_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe = probe_ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())
        ssl_ptr, ctx_ptr = _ssl_ptr(probe), _ctx_ptr(probe_ctx)
        if not ssl_ptr or not ctx_ptr or lib.SSL_get_SSL_CTX(ssl_ptr) != ctx_ptr:
            return None
    except (OSError, AttributeError, ValueError):
        return None
    return lib


_lib = _load()
NATIVE = _lib is not None


def take(tls: ssl.SSLObject) -> object | None:
    """The connection's current session (after the response was read: with its TLS 1.3 ticket)."""
    if _lib is not None:
        # a copy, as CPython's getter makes (but in memory): libssl marks the connection's own session
        # not resumable when the connection is freed without a TLS shutdown, as every check's is
        current = _lib.SSL_get_session(_ssl_ptr(tls))
        ptr = _lib.SSL_SESSION_dup(current) if current else None
        return NativeSession(ptr) if ptr else None
    return tls.session


def offer(tls: ssl.SSLObject, session: object) -> None:
    """Offer `session` (from `take` on a connection of the same SSLContext) before the handshake.

    If libssl or Python refuses it, the handshake is simply a full one.
    """
    if isinstance(session, NativeSession):
        if _lib is not None:
            _lib.SSL_set_session(_ssl_ptr(tls), session.ptr)
        return
    with contextlib.suppress(ValueError, TypeError):
        tls.session = session  # type: ignore[assignment]
