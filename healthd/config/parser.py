"""ldirectord.cf statements -> a Draft: global settings and virtual sections with checked values.

This layer knows the grammar: which directive exists, where it may appear and what
its value looks like. Nothing is resolved yet (no DNS, no defaults): build.py does that.
Every problem becomes an issue and parsing goes on, so one run reports them all.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from healthd.checks.spec import KNOWN_SERVICES, CheckType
from healthd.config import tls as tls_values
from healthd.config import values as v
from healthd.config.lexer import BadLine, Statement, latin1_lines, lex, quote, split_lines
from healthd.config.model import ConfigIssue
from healthd.config.regex import PerlRegexError, translate


@dataclass(frozen=True, slots=True)
class Setting:
    value: Any
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class VirtualAddress:
    host: str | None  # None for a fwmark
    port: str | None  # port number or service name as written; None for a fwmark
    fwmark: int | None


@dataclass
class Section:
    line: int
    text: str
    v6: bool
    address: VirtualAddress | None  # None when the virtual= value is invalid
    settings: dict[str, Setting] = field(default_factory=dict)
    reals: list[Setting] = field(default_factory=list)  # Setting(RealLine, ...)


@dataclass
class Draft:
    path: str
    settings: dict[str, Setting] = field(default_factory=dict)
    execute: list[Setting] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)


# --- directive values ----------------------------------------------------------------

Parse = Callable[[str, bool], Any]  # (value, section is IPv6) -> parsed value


def _plain(fn: Callable[[str], Any]) -> Parse:
    return lambda value, _v6: fn(value)


_CHECKTYPES = ("expected connect, negotiate, ping, external, external-perl, on, off "
               "or a number of connect checks between two negotiate checks")


def _checktype(value: str) -> Any:
    """ldirectord: the first digits in the value make it a number, else its first word."""
    number = re.search(r"\d+", value)
    if number is not None:
        if len(number.group(0)) > 6:
            raise v.Invalid(_CHECKTYPES)
        ignored = (value[: number.start()] + " " + value[number.end():]).strip()
        return v.noted((number.group(0), CheckType.NEGOTIATE, int(number.group(0))), ignored)
    name, ignored = v.first_match(r"[\w-]+", value, _CHECKTYPES)
    try:
        return v.noted((name, CheckType(name), 0), ignored)
    except ValueError:
        raise v.Invalid(_CHECKTYPES) from None


def _service(value: str) -> Any:
    name, ignored = v.word(value, "expected a service name")
    if name not in KNOWN_SERVICES:
        raise v.Invalid("unknown service: expected one of " + ", ".join(sorted(KNOWN_SERVICES)))
    return v.noted(name, ignored)


def _receive(value: str) -> Any:
    read = v.quoted_text(value)
    perl = read.value if isinstance(read, v.Noted) else read
    try:
        pair = (perl, translate(perl))
    except PerlRegexError as exc:
        raise v.Invalid(f"receive is a Perl regex that Python cannot use: {exc}") from None
    return v.Noted(pair, read.note) if isinstance(read, v.Noted) else pair


def _httpmethod(value: str) -> Any:
    name, ignored = v.word(value, "expected GET or HEAD")
    if name.upper() not in ("GET", "HEAD"):
        raise v.Invalid("expected GET or HEAD")
    return v.noted(name.upper(), ignored)


def _protocol(value: str) -> Any:
    name, ignored = v.word(value, "expected tcp, udp or fwm")
    if name not in ("tcp", "udp", "fwm"):
        raise v.Invalid("expected tcp, udp or fwm")
    return v.noted(name, ignored)


def _free_text(value: str) -> str:
    """servicename, comment: anything, even nothing (ldirectord takes the rest of the line)."""
    return v.unquote(value) if value.count('"') == 2 else value


def _netmask(value: str, v6: bool) -> str:
    return v.ipv6_prefix(value) if v6 else v.ipv4_netmask(value)


def _command(value: str) -> str:
    """A command line run without a shell: it must split into words (balanced quotes)."""
    command = v.text(value)
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise v.Invalid(f"cannot split the command into words: {exc}") from None
    if not words:
        raise v.Invalid("the command is empty")
    return command


def _supervised(value: str) -> bool:
    return v.yes_no(value)


GLOBAL, VIRTUAL, BOTH = "global", "virtual", "both"

DIRECTIVES: dict[str, tuple[str, Parse]] = {
    # global only
    "autoreload": (GLOBAL, _plain(v.yes_no)),
    "callback": (GLOBAL, _plain(v.optional_text)),
    "logfile": (GLOBAL, _plain(v.logfile)),
    "execute": (GLOBAL, _plain(v.text)),
    "fork": (GLOBAL, _plain(v.yes_no)),
    "supervised": (GLOBAL, _plain(_supervised)),
    "readdquiescent": (GLOBAL, _plain(v.yes_no)),
    "emailalertfrom": (GLOBAL, _plain(v.raw_text)),
    "maintenancedir": (GLOBAL, _plain(v.optional_text)),
    # global, or per virtual to override
    "checktimeout": (BOTH, _plain(v.positive_number)),
    "negotiatetimeout": (BOTH, _plain(v.positive_number)),
    "checkinterval": (BOTH, _plain(v.positive_number)),
    "checkcount": (BOTH, _plain(v.positive_int)),
    "failurecount": (BOTH, _plain(v.positive_int)),
    "fallback": (BOTH, lambda value, _v6: v.fallback_line(value, v6=False)),
    "fallback6": (BOTH, lambda value, _v6: v.fallback_line(value, v6=True)),
    "fallbackcommand": (BOTH, _plain(v.quoted_text)),
    "notifycommand": (BOTH, _plain(_command)),  # healthd extension
    "quiescent": (BOTH, _plain(v.yes_no)),
    "cleanstop": (BOTH, _plain(v.yes_no)),
    "emailalert": (BOTH, _plain(v.text)),
    "emailalertfreq": (BOTH, _plain(lambda value: v.count(value, leading=True))),
    "emailalertstatus": (BOTH, _plain(v.email_status)),
    "smtp": (BOTH, _plain(v.smtp_host)),
    # healthd extensions: TLS verification towards the reals (healthd.config.tls)
    "tlsverify": (BOTH, _plain(tls_values.verify_mode)),
    "tlscafile": (BOTH, _plain(tls_values.readable_file)),
    "tlsname": (BOTH, _plain(tls_values.name)),
    "tlscert": (BOTH, _plain(tls_values.readable_file)),
    "tlskey": (BOTH, _plain(tls_values.readable_file)),
    # healthd extensions (ldirectord rejects them): global, or per virtual to override
    "successcount": (BOTH, _plain(v.positive_int)),
    "fastinterval": (BOTH, _plain(v.positive_number)),
    "slowstart": (BOTH, _plain(v.seconds)),
    "drain": (BOTH, _plain(v.seconds)),
    "depoolthreshold": (BOTH, _plain(v.fraction)),
    "agentport": (BOTH, _plain(v.port_number)),
    # healthd extensions (ldirectord rejects them; off by default)
    "announce": (BOTH, _plain(v.yes_no)),  # route health injection: healthd/announce/
    # per virtual only
    "real": (VIRTUAL, lambda value, v6: v.real_line(value, v6=False)),
    "real6": (VIRTUAL, lambda value, v6: v.real_line(value, v6=True)),
    "request": (VIRTUAL, _plain(v.quoted_text)),
    "receive": (VIRTUAL, _plain(_receive)),
    "checktype": (VIRTUAL, _plain(_checktype)),
    "checkcommand": (VIRTUAL, _plain(v.quoted_text)),
    "checkport": (VIRTUAL, _plain(v.port_number)),
    "login": (VIRTUAL, _plain(v.quoted_text)),
    "passwd": (VIRTUAL, _plain(v.quoted_text)),
    "database": (VIRTUAL, _plain(v.quoted_text)),
    "secret": (VIRTUAL, _plain(v.quoted_text)),
    "scheduler": (VIRTUAL, _plain(v.scheduler)),
    "persistent": (VIRTUAL, _plain(v.count)),
    "netmask": (VIRTUAL, _netmask),
    "schedflags": (VIRTUAL, _plain(v.schedflags)),
    "protocol": (VIRTUAL, _plain(_protocol)),
    "ops": (VIRTUAL, _plain(v.yes_no)),
    "service": (VIRTUAL, _plain(_service)),
    "httpmethod": (VIRTUAL, _plain(_httpmethod)),
    "virtualhost": (VIRTUAL, _plain(v.host_name)),
    "monitorfile": (VIRTUAL, _plain(v.quoted_text)),
    "servicename": (VIRTUAL, _plain(_free_text)),
    "comment": (VIRTUAL, _plain(_free_text)),
    "load": (VIRTUAL, _plain(v.text)),
}

# Values never shown in a message (check-config output and logs are read by more people than the file).
SECRET = frozenset({"passwd", "secret"})

# Global directives whose empty value (`callback=""`) ldirectord runs as not set.
NONE_MEANS_UNSET = frozenset({"callback", "maintenancedir", "fallbackcommand"})

OBSOLETE = {
    "connecttimeout": "connecttimeout is obsolete: use negotiatetimeout (and checktimeout)",
    "timeout": "timeout is obsolete: use checktimeout and negotiatetimeout",
}


# Directives whose address family is fixed: True for the IPv6 spelling.
_FAMILY_BOUND = {"real": False, "real6": True, "fallback": False, "fallback6": True}


def _shown(item: Statement) -> str:
    """The statement as an issue quotes it (a secret's value hidden); built only for an issue."""
    return quote(f"{item.name}=(hidden)") if item.name in SECRET else quote(item.text)


# --- grammar ---------------------------------------------------------------------------


class _Parser:
    def __init__(self, path: str) -> None:
        self.draft = Draft(path)
        self.section: Section | None = None
        self.after_section_line = 0  # the unindented line that closed the last section

    def error(self, line: int, message: str) -> None:
        self.draft.errors.append(ConfigIssue(self.draft.path, line, message))

    def warn(self, line: int, message: str) -> None:
        self.draft.warnings.append(ConfigIssue(self.draft.path, line, message))

    def feed(self, item: Statement | BadLine) -> None:
        if isinstance(item, BadLine):
            shown = f" {quote(item.text)}" if item.text else ""
            self.error(item.line, f"{item.reason}{shown}")
            return
        if item.note is not None:
            self.warn(item.line, item.note)
        if item.name in ("virtual", "virtual6"):
            if item.indented:
                self.error(item.line, f"{item.name}= starts a new section and must start in column 0: "
                                      f"{quote(item.text)}")
            self.open_section(item)
            return
        if item.indented:
            if self.section is None:
                self.orphan(item)
            else:
                self.section_statement(self.section, item)
            return
        if self.section is not None:
            self.after_section_line = item.line
        self.section = None
        self.global_statement(item)

    def orphan(self, item: Statement) -> None:
        if self.after_section_line:
            self.error(item.line, f"indented line {quote(item.text)} is not inside a virtual section: "
                                  f"the section ended at the unindented line {self.after_section_line}")
        else:
            self.error(item.line, f"indented line {quote(item.text)} comes before any virtual= line")

    def value_of(self, item: Statement, name: str) -> str | None:
        if item.value is None:
            self.error(item.line, f"{name} needs a value: {quote(item.text)}")
            return None
        return item.value

    def parse_value(self, item: Statement, parse: Parse, v6: bool) -> Any:
        value = self.value_of(item, item.name)
        if value is None:
            return None
        try:
            result = parse(value, v6)
        except v.Invalid as exc:
            self.error(item.line, f"invalid {item.name} {_shown(item)}: {exc}")
            return None
        if isinstance(result, v.Noted):
            note = result.note if item.name not in SECRET else "some text around the value is ignored"
            self.warn(item.line, f"{item.name}: {note}: {_shown(item)}")
            result = result.value
        else:
            trouble = v.quote_trouble(value)
            if trouble is not None:
                self.warn(item.line, f"{item.name}: {trouble}: {_shown(item)}")
        return result

    def unknown(self, item: Statement, where: str) -> bool:
        """Report obsolete/unknown directives; True if the statement was one."""
        if item.name in OBSOLETE:
            self.error(item.line, f"{OBSOLETE[item.name]}: {quote(item.text)}")
            return True
        if item.name not in DIRECTIVES:
            hint = ""
            if item.name.lower() in DIRECTIVES:
                hint = f" (directives are lowercase: {item.name.lower()})"
            self.error(item.line, f"unknown directive {item.name!r}{where}{hint}: {quote(item.text)}")
            return True
        return False

    def global_statement(self, item: Statement) -> None:
        if self.unknown(item, ""):
            return
        scope, parse = DIRECTIVES[item.name]
        if scope == VIRTUAL:
            self.error(item.line, f"{item.name}= belongs inside a virtual section (indent it under a "
                                  f"virtual= line): {quote(item.text)}")
            return
        if item.name == "supervised" and item.value is None:
            self.warn(item.line, "a bare `supervised` means supervised = yes; write it that way")
            self.keep(self.draft.settings, item, True)
            return
        if item.name == "fallbackcommand":
            parse = _plain(v.optional_text)  # ldirectord runs `fallbackcommand=""` (as no command)
        value = self.parse_value(item, parse, item.name == "fallback6")
        if value is None:
            if item.name in NONE_MEANS_UNSET and item.value is not None:
                self.keep(self.draft.settings, item, None)
            return
        if item.name == "execute":
            self.draft.execute.append(Setting(value, item.line, item.text))
            return
        if item.name == "checkcount":
            self.warn(item.line, "checkcount is deprecated: it only sets the number of ping attempts; "
                                 "see failurecount")
        self.keep(self.draft.settings, item, value)

    def keep(self, where: dict[str, Setting], item: Statement, value: Any) -> None:
        earlier = where.get(item.name)
        if earlier is not None:
            self.warn(item.line, f"{item.name} is set again (first on line {earlier.line}); "
                                 "this later value wins")
        where[item.name] = Setting(value, item.line, item.text)

    def open_section(self, item: Statement) -> None:
        v6 = item.name == "virtual6"
        address = None
        value = self.value_of(item, item.name)
        if value is not None:
            try:
                address = virtual_address(value, v6=v6)
            except v.Invalid as exc:
                self.error(item.line, f"invalid {item.name} {quote(item.text)}: {exc}")
            if isinstance(address, v.Noted):
                self.warn(item.line, f"{item.name}: {address.note}: {quote(item.text)}")
                address = address.value
        self.section = Section(item.line, item.text, v6, address)
        self.draft.sections.append(self.section)

    def section_statement(self, section: Section, item: Statement) -> None:
        if self.unknown(item, " in a virtual section"):
            return
        scope, parse = DIRECTIVES[item.name]
        if scope == GLOBAL:
            self.error(item.line, f"{item.name} is a global directive: write it in column 0, outside "
                                  f"any virtual section: {quote(item.text)}")
            return
        family_bound = _FAMILY_BOUND
        if item.name in family_bound and family_bound[item.name] != section.v6:
            right = item.name.removesuffix("6") + ("6" if section.v6 else "")
            kind = "virtual6" if section.v6 else "virtual"
            self.error(item.line, f"{item.name}= cannot be used in a {kind}= section (the address "
                                  f"families differ): use {right}= : {quote(item.text)}")
            return
        value = self.parse_value(item, parse, section.v6)
        if value is None:
            return
        if item.name in ("real", "real6"):
            if value.double_colon:
                self.warn(item.line, f"'::' before the port in {quote(item.text)} is read as ':'")
            trouble = v.threshold_trouble(value.lower, value.upper)
            if trouble is not None:
                self.warn(item.line, f"{trouble}: {quote(item.text)}")
            section.reals.append(Setting(value, item.line, item.text))
            return
        if item.name == "load":
            self.warn(item.line, "load is an undocumented ldirectord directive; healthd ignores it")
            return
        if item.name == "checkcount":
            self.warn(item.line, "checkcount is deprecated: it only sets the number of ping attempts; "
                                 "see failurecount")
        self.keep(section.settings, item, value)


_V4_SERVICE = re.compile(r"(\d+\.\d+\.\d+\.\d+|[0-9A-Za-z._+-]+):([0-9A-Za-z_-]+)")
_V6_SERVICE = re.compile(r"\[([0-9A-Fa-f:.]+)\]:([0-9A-Za-z_-]+)")


def virtual_address(value: str, *, v6: bool) -> VirtualAddress | v.Noted:
    """`IP:port`, `host:port`, `N` (fwmark); for virtual6: `[v6]:port` or `N`.

    As in ldirectord the address is matched at the start of the value and the rest of the
    line is ignored (with a warning here); a dotted address without a port is, as there, the
    firewall mark of its first number (`virtual=192.168.1.1` is fwmark 192), with a warning.
    """
    head = value.split()[0] if value.split() else ""
    if re.fullmatch(r"[0-9A-Fa-f:]+", head) and head.count(":") >= 2:
        v.host_port(head, v6=v6, what="virtual")  # an IPv6 address without brackets: a clear error
    m = (v6 and _V6_SERVICE.match(value)) or _V4_SERVICE.match(value)
    if m:
        hp = v.host_port(m.group(0), v6=v6, what="virtual")
        return v.noted(VirtualAddress(hp.host, hp.port, None), value[m.end():])
    mark_match = re.match(r"\d+", value)
    if mark_match is None:
        v.host_port(head, v6=v6, what="virtual")  # raises the clearest message it has
        raise v.Invalid(f"the virtual service has no port: write {head}:PORT (such as {head}:80), "
                        "or a bare number for a firewall mark")
    digits = mark_match.group(0)
    mark = int(digits) if len(digits) <= 10 else 0
    if not 0 < mark < 2**32:
        raise v.Invalid("a firewall mark is a number between 1 and 4294967295")
    rest = value[mark_match.end():]
    address = VirtualAddress(None, None, mark)
    if re.match(r"\.\d", rest):
        return v.Noted(address, f"the virtual service has no port, so ldirectord (and healthd) read it as "
                                f"firewall mark {mark}: write {head}:PORT (such as {head}:80) for an "
                                "address and port")
    return v.noted(address, rest)


def parse(data: bytes | str, path: str) -> Draft:
    """Text or bytes of a whole file -> Draft (with errors and warnings, never an exception)."""
    parser = _Parser(path)
    lines = split_lines(data)
    latin1 = latin1_lines(data) if any(text is None for _, text in lines) else None
    for item in lex(lines, latin1):
        parser.feed(item)
    return parser.draft
