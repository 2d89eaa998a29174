"""Parsers for the value side of a directive: numbers, yes/no, quoted strings, addresses, real= lines.

Each raises Invalid with a message that tells the operator what was expected;
the caller adds FILE:LINE and the offending text.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any

FORWARDS = ("gate", "masq", "ipip")
_HOST = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?"
_PORT = r"[A-Za-z0-9_-]+"
_HOST_RE = re.compile(_HOST)
_PORT_RE = re.compile(_PORT)


class Invalid(ValueError):
    """A value that does not parse; str(exc) is the explanation."""


@dataclass(frozen=True, slots=True)
class Noted:
    """A value read the way ldirectord reads it, and what the operator should know about that.

    ldirectord matches most values with unanchored regexes, so text around the value is
    ignored rather than refused; healthd reads the same value and warns (the parser adds
    FILE:LINE).
    """

    value: Any
    note: str


def _ignored(rest: str) -> str:
    return f"the text '{rest.strip()[:40]}' after the value is ignored, as ldirectord ignores it"


def first_match(pattern: str, value: str, what: str) -> tuple[str, str]:
    """The first match of `pattern` in `value` (ldirectord's unanchored reading) and the text
    around it that is ignored; Invalid when there is none."""
    m = re.search(pattern, value)
    if m is None:
        raise Invalid(what)
    return m.group(0), (value[: m.start()] + " " + value[m.end():]).strip()


def noted(value: Any, ignored: str) -> Any:
    """`value`, wrapped in a Noted when some text around it was ignored."""
    if not ignored.strip().strip('"').strip():
        return value
    return Noted(value, _ignored(ignored))


QUOTE_LOOKALIKES = "\u201c\u201d\u201e\u201f\u2033\uff02"


def quote_trouble(value: str) -> str | None:
    """Why the quoting of a value looks wrong, or None: typographic quotes (a word processor's
    \u201c...\u201d), or an unbalanced ASCII double quote."""
    lookalikes = [] if value.isascii() else sorted({ch for ch in value if ch in QUOTE_LOOKALIKES})
    if lookalikes:
        shown = " ".join(lookalikes)
        return (f"the value contains typographic quotes ({shown}), which are not double quotes: they "
                "become part of the value (ldirectord refuses this line); write \"...\" instead")
    if value.count('"') % 2:
        return "the value has an unbalanced double quote"
    return None


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


def quoted_text(value: str) -> Any:
    """A non-empty string as ldirectord reads `request=` and `receive=`: from the first double
    quote to the last one on the line, the rest of the line ignored (a Noted then); unquoted
    values are taken as written (ldirectord refuses them)."""
    if not value.startswith('"'):
        result = value
        trailing = ""
    else:
        end = value.rfind('"')
        if end == 0:
            raise Invalid("the closing double quote is missing")
        result, trailing = value[1:end], value[end + 1 :]
    if not result:
        raise Invalid("the value is empty")
    trouble = quote_trouble(value)
    if trouble is not None and not (trouble.startswith("the value has an unbalanced") and trailing):
        return Noted(result, trouble)
    return noted(result, trailing)


def optional_text(value: str) -> Any:
    """A string that may be empty (`""` means none: None, with a note), quotes optional."""
    result = unquote(value)
    return result if result else Noted(None, "the value is empty: read as not set")


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


def _digits(value: str, message: str, *, leading: bool = False) -> tuple[str, str]:
    """ldirectord's reading of a number: the first run of digits in the value (`(\\d+)`), or
    only a leading one (`emailalertfreq`); the digits and the text ignored around them."""
    digits, ignored = first_match(r"^\d+" if leading else r"\d+", value.strip().strip('"'), message)
    return digits, ignored


def positive_number(value: str) -> Any:
    """Seconds: a positive integer or decimal (ldirectord: the first digits in the value)."""
    message = "expected a positive number of seconds"
    if re.fullmatch(r"\d+(\.\d+)?", value):
        number = float(value)
        ignored = ""
    else:
        digits, ignored = _digits(value, message)
        number = float(digits) if len(digits) < 12 else 0.0
    if number <= 0 or number > 86400 * 365:
        raise Invalid(message)
    return noted(number, ignored)


def positive_int(value: str) -> Any:
    digits, ignored = _digits(value, "expected a positive whole number")
    if len(digits) > 9 or int(digits) <= 0:
        raise Invalid("expected a positive whole number")
    return noted(int(digits), ignored)


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


def count(value: str, *, leading: bool = False) -> Any:
    """A whole number, zero allowed."""
    digits, ignored = _digits(value, "expected a whole number (0 or more)", leading=leading)
    if len(digits) > 10:
        raise Invalid("expected a whole number (0 or more)")
    return noted(int(digits), ignored)


def port_number(value: str) -> Any:
    message = "expected a port number between 1 and 65535"
    digits, ignored = _digits(value, message)
    if len(digits) > 5 or not 0 < int(digits) < 65536:
        raise Invalid(message)
    return noted(int(digits), ignored)


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


def real_line(value: str, *, v6: bool) -> RealLine | Noted:
    """`HOST[->HOST][:PORT] gate|masq|ipip [WEIGHT] ["request", "receive"] [l:N] [u:N]`.

    Read as ldirectord reads it: it searches for each part in turn, so a word it does not
    know is ignored when a known part follows it (`gate -w 2` has weight 2) and refused
    when nothing known follows. healthd does the same and warns about what it ignored
    (nothing for `-w`, ipvsadm's weight option).
    """
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
    weight: int | None = None
    request = receive = None
    lower = upper = agentport = 0
    seen_upper = False
    pending: list[str] = []  # unknown words: ignored if a known part follows, else refused
    ignored: list[str] = []
    notes: list[str] = []

    def known() -> None:
        ignored.extend(w for w in pending if w not in ("-w", "--weight"))
        pending.clear()

    while rest:
        if rest.startswith('"'):
            if request is not None:
                raise Invalid("only one request/receive pair is allowed")
            m = _PAIR.match(rest)
            if m is None:
                raise Invalid('expected a quoted pair "request", "receive"')
            known()
            request, receive = m.group(1), m.group(2)
            rest = rest[m.end() :].strip()
            continue
        token, _, rest = rest.partition(" ")
        rest = rest.strip()
        threshold = re.fullmatch(r"(l|u|agent):(\d{1,9})", token)
        if weight is None and re.fullmatch(r"\d+", token):
            if len(token) > 9 or int(token) > 65535:
                raise Invalid("the weight must be between 0 and 65535")
            known()
            weight = int(token)
        elif threshold is not None:
            known()
            if threshold.group(1) == "agent":  # healthd extension
                agentport = port_number(threshold.group(2))
            elif threshold.group(1) == "l":
                lower = int(threshold.group(2))
                if seen_upper:
                    notes.append("ldirectord reads no u: written before l: (its table then has no "
                                  "upper threshold); healthd reads both")
            else:
                upper = int(threshold.group(2))
                seen_upper = True
        else:
            pending.append(token)
    if pending:
        raise Invalid(f"unexpected text {' '.join(pending)[:40]!r}: expected a weight, "
                      '"request", "receive", l:N, u:N or agent:PORT')
    if ignored:
        notes.append(f"the text '{' '.join(ignored)[:40]}' is ignored, as ldirectord ignores it")
    line = RealLine(first, last, forward, 1 if weight is None else weight, request, receive,
                    lower, upper, double_colon, agentport)
    return Noted(line, "; ".join(notes)) if notes else line


def threshold_trouble(lower: int, upper: int) -> str | None:
    """Why the kernel refuses these connection thresholds (ERANGE), or None: the lower one must
    not be above the upper one, and no upper threshold (0) counts as 0 there."""
    if lower and lower > upper:
        above = f"the upper threshold u:{upper}" if upper else "the upper threshold, which is unset (0)"
        return (f"the lower threshold l:{lower} is above {above}: the kernel refuses this real "
                "server (ERANGE); the rest of the table is applied")
    return None


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


# check-config exits 1 on a warning that says this: ldirectord would not start with the file.
LDIRECTORD_WOULD_NOT_START = "ldirectord refuses to start with this logfile"


def logfile_problem(path: str) -> str | None:
    """Why a logfile path cannot be opened for appending, as far as a dry run can tell."""
    directory = os.path.dirname(path) or "/"
    if not os.path.isdir(directory):
        return f"its directory {directory} does not exist"
    if os.path.isdir(path):
        return "it is a directory"
    return None


def logfile(value: str) -> str:
    target = text(value)
    if not target.startswith("/") and target not in _FACILITIES:
        raise Invalid("expected an absolute path or a syslog facility such as local0")
    return target


def smtp_host(value: str) -> Any:
    """ldirectord takes the leading host characters and ignores the rest of the line."""
    target = unquote(value) if value.count('"') == 2 else value
    m = re.match(r"\[[0-9A-Fa-f:.]+\](?::\d+)?|[0-9A-Za-z._+:-]+", target)
    if m is None:
        raise Invalid("expected the SMTP server's host name or address")
    return noted(m.group(0), target[m.end():])


# The schedulers of Linux 6.x (ip_vs_*.ko); any other name is refused by the kernel.
KERNEL_SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
                     "twos")


def scheduler(value: str) -> Any:
    """ldirectord takes the first run of lowercase letters; the kernel refuses a name it does not know
    (ENOENT: that virtual service only), which healthd predicts with a note."""
    name, ignored = first_match(r"[a-z]+", value, "expected a scheduler name in lowercase letters, "
                                                  "such as wrr, rr or wlc")
    if len(name) > 15:
        raise Invalid("a scheduler name has at most 15 letters")
    read = noted(name, ignored)
    if name in KERNEL_SCHEDULERS:
        return read
    unknown = (f"Linux has no scheduler {name!r} ({', '.join(KERNEL_SCHEDULERS)}): the kernel refuses this "
               "virtual service, as it refuses ldirectord's ipvsadm -A; the rest of the table is applied")
    return Noted(name, f"{read.note}; {unknown}" if isinstance(read, Noted) else unknown)


def schedflags(value: str) -> tuple[str, ...]:
    flags = tuple(f for f in re.split(r"[,|\s]+", value) if f)
    if not flags or not all(re.fullmatch(r"[a-z0-9-]+", f) for f in flags):
        raise Invalid("expected scheduler flags such as flag-1,flag-2 or sh-fallback")
    return flags


def host_name(value: str) -> Any:
    """A bare or quoted host name (virtualhost); ldirectord reads up to a double quote."""
    name = value.strip('"') if value.count('"') <= 2 else unquote(value)
    m = re.match(r"[A-Za-z0-9._:\[\]-]+", name)
    if m is None:
        raise Invalid("expected a host name")
    return noted(m.group(0), name[m.end():])


def word(value: str, what: str) -> tuple[str, str]:
    """ldirectord's `(\\w+)`: the first word of the value, and the ignored rest."""
    return first_match(r"\w+", value, what)
