"""Which HTTP redirects a check follows: LWP's statuses and hop limit, but only to the same real server.

ldirectord's LWP::UserAgent (6.68 on Debian 12) follows 301, 302, 303, 307 and 308 for
GET and HEAD, up to 7 redirects, and judges the last response. It follows a Location
to any host: `http://www.example.com/` is resolved through DNS, which usually leads
back through the load balancer to *some* real, not the one being checked. healthd
follows a redirect only while it stays on the real under check: a relative Location,
or an absolute one whose scheme is the request's and whose host and port are the
Host the request named or the real's own address and check port; the request then
goes to the same address and port with the new path. Anything else is a failure that
says where the real pointed, so the operator can check that page directly.
For http_proxy the real is the proxy: any http:// Location is asked of it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 7  # LWP::UserAgent's max_redirect
_DEFAULT_PORT = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Hop:
    """Where the next request goes: its request-target (a path, or an absolute URL for a proxy)."""

    target: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a redirect is not followed (a one-line failure detail)."""

    reason: str


def _authority(host: str, port: int | None, scheme: str) -> tuple[str, int]:
    return host.lower().strip("[]"), port or _DEFAULT_PORT.get(scheme, 80)


def next_hop(status: int, location: str, *, scheme: str, host: str, target: str, address: str,
             port: int, proxy: bool) -> Hop | Refused:
    """Where a redirect answer (`status`, its Location) sends the next request of this check.

    `scheme`, `host` (the Host header sent, `name[:port]`) and `target` describe the
    request that was answered; `address`/`port` are the real's (where checks connect).
    """
    if not location:
        return Refused(f"HTTP {status} without a Location")
    if any(c in location for c in "\r\n\0 "):
        return Refused(f"HTTP {status} to an invalid Location")
    base = target if proxy else f"{scheme}://{host}{target}"
    url = urljoin(base, location.strip())
    try:
        parts = urlsplit(url)
        new_port = parts.port
    except ValueError:
        return Refused(f"HTTP {status} to an invalid Location: {_short(location)}")
    if proxy:
        if parts.scheme != "http" or not parts.hostname:
            return Refused(f"HTTP {status} to {_short(url)} not followed: a proxy is asked for http:// only")
        return Hop(url.split("#", 1)[0])
    if parts.scheme != scheme or not parts.hostname:
        return Refused(f"HTTP {status} to {_short(url)} not followed: another scheme than this check's")
    sent = urlsplit(f"{scheme}://{host}")
    same = {_authority(sent.hostname or "", sent.port, scheme), _authority(address, port, scheme)}
    if _authority(parts.hostname, new_port, scheme) not in same:
        return Refused(f"HTTP {status} to {_short(url)} not followed: another host or port than this real")
    path = parts.path or "/"
    return Hop(path + (f"?{parts.query}" if parts.query else ""))


def _short(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
