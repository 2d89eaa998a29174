"""Resources shared by every check run: created once per daemon, never per check."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field


def _unverified_tls() -> ssl.SSLContext:
    # ldirectord does not verify real servers' certificates; healthd matches that by default.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class CheckContext:
    tls: ssl.SSLContext = field(default_factory=_unverified_tls)
    body_limit: int = 64 * 1024  # bytes of a response body read before deciding
