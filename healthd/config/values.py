"""Parsers for the value side of a directive: numbers, yes/no, quoted strings, addresses, real= lines.

Each raises Invalid with a message that tells the operator what was expected;
the caller adds FILE:LINE and the offending text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

FORWARDS = ("gate", "masq", "ipip")
_HOST = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?"
_PORT = r"[A-Za-z0-9_-]+"
_HOST_RE = re.compile(_HOST)
_PORT_RE = re.compile(_PORT)


class Invalid(ValueError):
    """A value that does not parse; str(exc) is the explanation."""


def unquote(value: str) -> str:
    """`"text"` -> `text`; unquoted values are taken as written."""
    if value.startswith('"'):
        end = value.find('"', 1)
        if end < 0:
            raise Invalid("the closing double quote is missing")
        if value[end + 1 :].strip():
            raise Invalid(f"unexpected text after the closing quote: {value[end + 1:].strip()!r}")
        return value[1:end]
    return value


def text(value: str) -> str:
    """A non-empty string, quotes optional."""
    result = unquote(value)
    if not result:
        raise Invalid("the value is empty")
    return result


def raw_text(value: str) -> str:
    """A non-empty string taken as written, quotes included (emailalertfrom is a From header)."""
    if not value:
        raise Invalid("the value is empty")
    return value


def yes_no(value: str) -> bool:
    if value not in ("yes", "no"):
        raise Invalid("expected yes or no")
    return value == "yes"


def positive_number(value: str) -> float:
    """Seconds: a positive integer or decimal."""
    if not re.fullmatch(r"\d+(\.\d+)?", value) or float(value) <= 0 or float(value) > 86400 * 365:
        raise Invalid("expected a positive number of seconds")
    return float(value)


def positive_int(value: str) -> int:
    if not re.fullmatch(r"\d{1,9}", value) or int(value) <= 0:
        raise Invalid("expected a positive whole number")
    return int(value)


def seconds(value: str) -> float:
    """Seconds, zero allowed (a healthd extension's way of saying "off")."""
    if not re.fullmatch(r"\d+(\.\d+)?", value) or float(value) > 86400:
        raise Invalid("expected a number of seconds between 0 and 86400")
    return float(value)


def fraction(value: str) -> float:
    """A fraction between 0 and 1 (0.5), or a percentage (50%)."""
    percent = value.endswith("%")
    number = value[:-1] if percent else value
    if not re.fullmatch(r"\d+(\.\d+)?", number):
        raise Invalid("expected a fraction between 0 and 1 (such as 0.5) or a percentage (50%)")
    result = float(number) / 100 if percent else float(number)
    if result > 1:
        raise Invalid("expected a fraction between 0 and 1 (such as 0.5) or a percentage (50%)")
    return result


def count(value: str) -> int:
    """A whole number, zero allowed."""
    if not re.fullmatch(r"\d{1,10}", value):
        raise Invalid("expected a whole number (0 or more)")
    return int(value)


def port_number(value: str) -> int:
    if not re.fullmatch(r"\d{1,5}", value) or not 0 < int(value) < 65536:
        raise Invalid("expected a port number between 1 and 65535")
    return int(value)


def ipv4_netmask(value: str) -> str:
    try:
        net = ipaddress.IPv4Network(f"0.0.0.0/{value}")
    except ValueError:
        raise Invalid("expected a dotted IPv4 netmask such as 255.255.255.0") from None
    if not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value):
        raise Invalid("expected a dotted IPv4 netmask such as 255.255.255.0")
    return str(net.netmask)


def ipv6_prefix(value: str) -> str:
    if not re.fullmatch(r"\d{1,3}", value) or not 1 <= int(value) <= 128:
        raise Invalid("expected an IPv6 prefix length between 1 and 128")
    return str(int(value))


@dataclass(frozen=True, slots=True)
class HostPort:
    """An address as written: host (IP literal or name, no brackets) and port text ("" = none)."""

    host: str
    port: str
    bracketed: bool = False


def host_port(value: str, *, v6: bool, what: str) -> HostPort:
    """`host[:port]` (IPv4 sections) or `[v6][:port]` (IPv6 sections)."""
    if v6:
        m = re.fullmatch(rf"\[([0-9A-Fa-f:.]+)\](?::({_PORT}))?", value)
        named = re.fullmatch(rf"({_HOST})(?::({_PORT}))?", value)
        if m is None and named is not None and not named.group(1).replace(".", "").isdigit():
            return HostPort(named.group(1), named.group(2) or "")  # a host name, resolved to IPv6
        if m is None:
            if re.fullmatch(r"[0-9A-Fa-f:]+", value) and value.count(":") >= 2:
                raise Invalid(f"write the IPv6 address of the {what} in brackets: [{value}]")
            raise Invalid(f"expected [IPv6-address]:port for the {what}")
        return HostPort(m.group(1), m.group(2) or "", True)
    if value.startswith("["):
        raise Invalid(f"an IPv6 address needs the {what}6= form")
    # `::port` appears in ldirectord's own sample; read it as `:port`.
    m = re.fullmatch(rf"({_HOST})(?:::?({_PORT}))?", value)
    if m is None:
        if value.count(":") >= 2:
            raise Invalid(f"an IPv6 address needs the {what}6= form with brackets")
        raise Invalid(f"expected host:port for the {what}")
    return HostPort(m.group(1), m.group(2) or "")


@dataclass(frozen=True, slots=True)
class RealLine:
    """A `real=` value, split but not yet resolved."""

    first: HostPort
    last: HostPort | None  # range end, None for a single address
    forward: str
    weight: int
    request: str | None
    receive: str | None
    lower: int
    upper: int
    double_colon: bool
    agentport: int = 0  # healthd extension `agent:PORT`; 0 = the virtual's agentport, if any


_REAL_ADDRESS_V4 = re.compile(rf"({_HOST})(?:->({_HOST}))?(?:(::?)({_PORT}))?")
_PAIR = re.compile(r'"([^"]*)"\s*,?\s*"([^"]*)"')


def real_line(value: str, *, v6: bool) -> RealLine:
    """`HOST[->HOST][:PORT] gate|masq|ipip [WEIGHT] ["request", "receive"] [l:N] [u:N]`."""
    value = value.strip()
    parts = value.split(None, 1)
    head = parts[0] if parts else ""
    rest = parts[1].strip() if len(parts) > 1 else ""
    first, last, double_colon = _real_address(head, v6=v6)
    words = rest.split(None, 1)
    if not words:
        raise Invalid("the forwarding method is missing: add gate, masq or ipip after the address")
    forward = words[0]
    if forward not in FORWARDS:
        raise Invalid(f"unknown forwarding method {forward!r}: expected gate, masq or ipip")
    rest = words[1] if len(words) > 1 else ""
    weight = 1
    m = re.match(r"(\d+)(?=\s|$)", rest)
    if m:
        if len(m.group(1)) > 9 or int(m.group(1)) > 65535:
            raise Invalid("the weight must be between 0 and 65535")
        weight = int(m.group(1))
        rest = rest[m.end() :].strip()
    request = receive = None
    lower = upper = agentport = 0
    while rest:
        if rest.startswith('"'):
            if request is not None:
                raise Invalid("only one request/receive pair is allowed")
            m = _PAIR.match(rest)
            if m is None:
                raise Invalid('expected a quoted pair "request", "receive"')
            request, receive = m.group(1), m.group(2)
            rest = rest[m.end() :].strip()
            continue
        m = re.match(r"(l|u|agent):(\d{1,9})(?=\s|$)", rest)
        if m is None:
            raise Invalid(f"unexpected text {rest[:40]!r}: expected a weight, "
                          '"request", "receive", l:N, u:N or agent:PORT')
        if m.group(1) == "agent":
            agentport = port_number(m.group(2))
        elif m.group(1) == "l":
            lower = int(m.group(2))
        else:
            upper = int(m.group(2))
        rest = rest[m.end() :].strip()
    if lower and upper and lower > upper:
        raise Invalid(f"the lower threshold l:{lower} is above the upper threshold u:{upper}")
    return RealLine(first, last, forward, weight, request, receive, lower, upper, double_colon, agentport)


def _real_address(head: str, *, v6: bool) -> tuple[HostPort, HostPort | None, bool]:
    if v6:
        m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](->\[[0-9A-Fa-f:.]+\])?(?::(" + _PORT + "))?", head)
        named = re.fullmatch(rf"({_HOST})(?::({_PORT}))?", head)
        if m is None and named is not None and not named.group(1).replace(".", "").isdigit():
            return HostPort(named.group(1), named.group(2) or ""), None, False
        if m is None:
            raise Invalid("expected [IPv6-address][:port] for the real server")
        if m.group(2):
            raise Invalid("address ranges a->b are IPv4 only")
        return HostPort(m.group(1), m.group(3) or "", True), None, False
    if head.startswith("["):
        raise Invalid("an IPv6 real server needs real6= inside a virtual6= section")
    m = _REAL_ADDRESS_V4.fullmatch(head)
    if m is None:
        raise Invalid("expected host[->host][:port] for the real server")
    port = m.group(4) or ""
    first = HostPort(m.group(1), port)
    last = HostPort(m.group(2), port) if m.group(2) else None
    return first, last, m.group(3) == "::"


@dataclass(frozen=True, slots=True)
class FallbackLine:
    address: HostPort
    forward: str


def fallback_line(value: str, *, v6: bool) -> FallbackLine:
    """`host[:port] [gate|masq|ipip]`."""
    words = value.split()
    if not words or len(words) > 2:
        raise Invalid("expected host[:port] [gate|masq|ipip]")
    forward = words[1] if len(words) == 2 else "gate"
    if forward not in FORWARDS:
        raise Invalid(f"unknown forwarding method {forward!r}: expected gate, masq or ipip")
    return FallbackLine(host_port(words[0], v6=v6, what="fallback"), forward)


EMAIL_STATUSES = ("starting", "running", "stopping", "reloading")


def email_status(value: str) -> tuple[str, ...]:
    items = [s.strip() for s in value.split(",")]
    for item in items:
        if item not in (*EMAIL_STATUSES, "all", "none"):
            raise Invalid(f"unknown alert status {item!r}: expected all, none or a list of "
                          + ", ".join(EMAIL_STATUSES))
    if "none" in items and len(items) > 1:
        raise Invalid('"none" cannot be combined with other statuses')
    if "all" in items:
        return ("all",)
    return tuple(dict.fromkeys(items))


_FACILITIES = {
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog",
    "user", "uucp", *(f"local{i}" for i in range(8)),
}


def logfile(value: str) -> str:
    target = text(value)
    if not target.startswith("/") and target not in _FACILITIES:
        raise Invalid("expected an absolute path or a syslog facility such as local0")
    return target


def smtp_host(value: str) -> str:
    target = unquote(value)
    if not re.fullmatch(r"[0-9A-Za-z._+:\[\]-]+", target):
        raise Invalid("expected the SMTP server's host name or address")
    return target


def scheduler(value: str) -> str:
    if not re.fullmatch(r"[a-z]{1,15}", value):
        raise Invalid("expected a scheduler name in lowercase letters, such as wrr, rr or wlc")
    return value


def schedflags(value: str) -> tuple[str, ...]:
    flags = tuple(f for f in re.split(r"[,|\s]+", value) if f)
    if not flags or not all(re.fullmatch(r"[a-z0-9-]+", f) for f in flags):
        raise Invalid("expected scheduler flags such as flag-1,flag-2 or sh-fallback")
    return flags


def host_name(value: str) -> str:
    """A bare or quoted host name (virtualhost)."""
    name = unquote(value)
    if not name or not re.fullmatch(r"[A-Za-z0-9._:\[\]-]+", name):
        raise Invalid("expected a host name")
    return name
