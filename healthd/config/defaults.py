"""ldirectord's default rules: service by port, protocol, timeouts, check port, credentials.

Kept apart from the parser so that each rule can be read (and tested) on its own.
"""

from __future__ import annotations

import os
import socket

from healthd.vocab import CheckType, ServiceProtocol

DEFAULT_CHECKTIMEOUT = 5.0
DEFAULT_NEGOTIATETIMEOUT = 30.0
DEFAULT_CHECKINTERVAL = 10.0
DEFAULT_CHECKCOMMAND = "/bin/true"

# The well-known port of each service ldirectord checks (both directions are used).
SERVICE_PORTS: dict[str, int] = {
    "ftp": 21, "smtp": 25, "dns": 53, "http": 80, "pop": 110, "nntp": 119, "imap": 143,
    "ldap": 389, "https": 443, "submission": 587, "ldaps": 636, "imaps": 993, "pops": 995,
    "oracle": 1521, "radius": 1812, "http_proxy": 3128, "mysql": 3306, "sip": 5060,
    "pgsql": 5432,
}
_SERVICE_BY_PORT = {port: name for name, port in SERVICE_PORTS.items()}


def service_for_port(port: int) -> str:
    """The service ldirectord assumes for a virtual port; "none" for fwmarks and other ports."""
    return _SERVICE_BY_PORT.get(port, "none")


def protocol_for(port_text: str | None) -> str:
    """tcp, except udp for DNS (port 53 or the name `domain`) and fwm for marks (port_text None)."""
    if port_text is None:
        return "fwm"
    return "udp" if port_text in ("53", "domain") else "tcp"


def check_protocol(virtual: ServiceProtocol, checktype: CheckType, service: str) -> ServiceProtocol:
    """The transport a check uses: its virtual's protocol, and for a firewall mark (which is none)
    TCP, except the dns and sip negotiations, which go over UDP as for a UDP virtual.

    Spelled this way, a real checked the same way in a TCP (or UDP) virtual and in a
    firewall-mark one is one check identity, checked once.
    """
    if virtual is not ServiceProtocol.FWM:
        return virtual
    if checktype is CheckType.NEGOTIATE and service in ("dns", "sip"):
        return ServiceProtocol.UDP
    return ServiceProtocol.TCP


def first_set(*values: float | None, default: float) -> float:
    for value in values:
        if value is not None:
            return value
    return default


def checktimeout(virtual_check: float | None, virtual_negotiate: float | None,
                 global_check: float | None, global_negotiate: float | None) -> float:
    """ldirectord's order: the check timeout first, then the negotiate timeout, virtual before global."""
    return first_set(virtual_check, virtual_negotiate, global_check, global_negotiate,
                     default=DEFAULT_CHECKTIMEOUT)


def negotiatetimeout(virtual_check: float | None, virtual_negotiate: float | None,
                     global_check: float | None, global_negotiate: float | None) -> float:
    """ldirectord's order: the negotiate timeout first, then the check timeout, virtual before global."""
    return first_set(virtual_negotiate, virtual_check, global_negotiate, global_check,
                     default=DEFAULT_NEGOTIATETIMEOUT)


def checkport(explicit: int | None, real_port: int, service: str) -> int:
    """Where a check connects: checkport=, else the real's port, else the service's port (0 = none)."""
    if explicit is not None:
        return explicit
    if real_port > 0:
        return real_port
    return SERVICE_PORTS.get(service, 0)


def local_hostname() -> str:
    return os.environ.get("HOSTNAME") or socket.gethostname()


def default_login(service: str) -> str:
    if service == "ftp":
        return "anonymous"
    if service == "sip":
        return f"ldirectord@{local_hostname()}"
    return ""


def default_passwd(service: str) -> str:
    return f"ldirectord@{local_hostname()}" if service == "ftp" else ""
