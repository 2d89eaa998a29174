"""Draft -> Config: resolve names and ports, apply ldirectord's defaults, cross-check sections.

After this step every Real carries a complete CheckSpec and every Virtual its
effective settings (its own, else the global ones), so no later layer re-derives one.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any

from healthd.checks import services
from healthd.checks.spec import CheckSpec, CheckType
from healthd.checks.tls import TLS_SERVICES
from healthd.config import defaults
from healthd.config import values as v
from healthd.config.lexer import quote
from healthd.config.lookup import Resolver, is_ip, resolve_host, resolve_port
from healthd.config.model import Config, ConfigIssue, Fallback, GlobalSettings, Real, Virtual
from healthd.config.parser import Draft, Section, Setting, VirtualAddress
from healthd.config.regex import PerlRegexError, translate
from healthd.config.tls import PolicyBuilder
from healthd.config.values import FallbackLine, HostPort, RealLine
from healthd.vocab import Forward, ServiceProtocol
from healthd.vocab import host as bracketed

MAX_RANGE = 4096  # addresses one `a->b` may expand to; beyond that it is surely a typo
_URL = re.compile(r"/?(https?)://(\[[0-9A-Fa-f:.]+\]|[^/:?#\s]+)(?::(\d{1,5}))?([/?].*)?")


@dataclass
class _Builder:
    draft: Draft
    resolver: Resolver
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    tls: PolicyBuilder = field(init=False)
    globals: GlobalSettings = field(init=False)  # set by global_settings(), read by every section

    def __post_init__(self) -> None:
        self.tls = PolicyBuilder(self.error)
        self.resolver = _once_per_name(self.resolver)

    def error(self, line: int, message: str) -> None:
        self.errors.append(ConfigIssue(self.draft.path, line, message))

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(ConfigIssue(self.draft.path, line, message))

    def global_value(self, name: str, default: Any = None) -> Any:
        """A global directive's value as written, else `default`."""
        setting = self.draft.settings.get(name)
        return default if setting is None else setting.value

    # --- global ---------------------------------------------------------------------

    def global_settings(self) -> GlobalSettings:
        maintenancedir = self.global_value("maintenancedir")
        if maintenancedir is not None and not os.path.isdir(maintenancedir):
            self.warn(self.draft.settings["maintenancedir"].line,
                      f"maintenance directory {maintenancedir} does not exist (yet)")
        logfile = self.global_value("logfile", "/var/log/ldirectord.log")
        explicit = "logfile" in self.draft.settings and logfile.startswith("/")
        problem = v.logfile_problem(logfile) if explicit else None
        if problem is not None:
            self.warn(self.draft.settings["logfile"].line,
                      f"cannot open logfile {logfile}: {problem}; {v.LDIRECTORD_WOULD_NOT_START} (except "
                      "with -d or supervised=yes); healthd logs to the journal or stderr instead: "
                      f"{quote(self.draft.settings['logfile'].text)}")
        self.globals = GlobalSettings(
            checktimeout=self.global_value("checktimeout"),
            negotiatetimeout=self.global_value("negotiatetimeout"),
            checkinterval=self.global_value("checkinterval", defaults.DEFAULT_CHECKINTERVAL),
            checkcount=self.global_value("checkcount", 1),
            failurecount=self.global_value("failurecount", 1),
            fallback=self.fallback(self.draft.settings.get("fallback"), 4, ServiceProtocol.TCP, 0),
            fallback6=self.fallback(self.draft.settings.get("fallback6"), 6, ServiceProtocol.TCP, 0),
            fallbackcommand=self.global_value("fallbackcommand"),
            notifycommand=self.global_value("notifycommand"),
            autoreload=self.global_value("autoreload", False),
            callback=self.global_value("callback"),
            logfile=logfile,
            execute=tuple(setting.value for setting in self.draft.execute),
            fork=self.global_value("fork", False),
            supervised=self.global_value("supervised", False),
            quiescent=self.global_value("quiescent", False),
            readdquiescent=self.global_value("readdquiescent", False),
            emailalert=self.global_value("emailalert"),
            emailalertfreq=self.global_value("emailalertfreq", 0),
            emailalertstatus=self.global_value("emailalertstatus", ("all",)),
            emailalertfrom=self.global_value("emailalertfrom"),
            cleanstop=self.global_value("cleanstop", True),
            smtp=self.global_value("smtp"),
            maintenancedir=maintenancedir,
            successcount=self.global_value("successcount", 1),
            fastinterval=self.global_value("fastinterval", 0.0),
            slowstart=self.global_value("slowstart", 0.0),
            drain=self.global_value("drain", 0.0),
            depoolthreshold=self.global_value("depoolthreshold", 0.0),
            agentport=self.global_value("agentport", 0),
            announce=self.global_value("announce", False),
        )
        return self.globals

    def fallback(self, setting: Setting | None, family: int, protocol: ServiceProtocol,
                 default_port: int) -> Fallback | None:
        if setting is None:
            return None
        line: FallbackLine = setting.value
        address = self.address(line.address.host, family, setting, "fallback server")
        port = self.port(line.address, protocol, setting, "fallback server", default_port)
        if address is None or port is None:
            return None
        return Fallback(address, port, Forward(line.forward), 1)

    # --- resolution helpers -----------------------------------------------------------

    def address(self, host: str, family: int, where: Setting, what: str) -> str | None:
        resolved = resolve_host(host, family, self.resolver)
        if resolved is not None:
            return resolved
        if is_ip(host):
            other = 6 if family == 4 else 4
            self.error(where.line, f"the {what} {host} is an IPv{other} address but this section is "
                                   f"IPv{family}: {quote(where.text)}")
        else:
            self.error(where.line, f"cannot resolve {host!r} to an IPv{family} address for the {what}: "
                                   f"{quote(where.text)}")
        return None

    def port(self, written: HostPort, protocol: str, where: Setting, what: str, default: int) -> int | None:
        if not written.port:
            return default
        port = resolve_port(written.port, protocol)
        if port is None:
            self.error(where.line, f"unknown port or service name {written.port!r} for the {what}: "
                                   f"{quote(where.text)}")
        return port

    # --- sections ---------------------------------------------------------------------

    def virtuals(self) -> tuple[Virtual, ...]:
        seen: dict[tuple[Any, ...], int] = {}
        result = []
        for section in self.draft.sections:
            virtual = self.virtual(section)
            if virtual is None:
                continue
            key = (virtual.family, virtual.protocol, virtual.address, virtual.port, virtual.fwmark)
            if key in seen:
                self.error(section.line, f"duplicate virtual service {virtual.label} "
                                         f"{virtual.protocol} (first defined on line {seen[key]}): "
                                         f"{quote(section.text)}")
                continue
            seen[key] = section.line
            result.append(virtual)
        return tuple(result)

    def virtual(self, section: Section) -> Virtual | None:
        if section.address is None:
            return None
        settings = section.settings

        def get(name: str, default: Any = None) -> Any:
            return settings[name].value if name in settings else default

        g = self.globals
        where = Setting(None, section.line, section.text)
        family = 6 if section.v6 else 4
        written = section.address
        fwmark = written.fwmark
        protocol = self.protocol(written, settings)
        address: str | None = None
        port = 0
        ok = True
        if fwmark is None:
            assert written.host is not None and written.port is not None
            address = self.address(written.host, family, where, "virtual service")
            resolved_port = self.port(HostPort(written.host, written.port), protocol, where,
                                      "virtual service", 0)
            # Port 0 is "every port", which IPVS allows for a persistent service only (ipvsadm refuses
            # the other kind, so ldirectord's virtual never exists).
            if resolved_port == 0 and "persistent" not in settings:
                self.error(section.line, "the virtual service's port must be between 1 and 65535 (port 0, "
                                         f"every port, needs persistent=): {quote(section.text)}")
            ok = address is not None and resolved_port is not None and (
                resolved_port > 0 or "persistent" in settings)
            port = resolved_port or 0
        ops = get("ops", False) and protocol is ServiceProtocol.UDP
        if get("ops", False) and not ops:
            self.warn(settings["ops"].line, "ops=yes (one-packet scheduling) applies to UDP only: ignored "
                                            f"for this {protocol.value} service, as ldirectord ignores it: "
                                            f"{quote(settings['ops'].text)}")
        service = get("service") or (defaults.service_for_port(port) if fwmark is None else "none")
        type_name, checktype, every = get("checktype", ("negotiate", CheckType.NEGOTIATE, 0))
        self.check_the_checks(section, service, port, type_name, checktype)

        common = self.check_settings(settings, protocol, service, checktype, every)
        context = _VirtualContext(family, protocol, address, port, fwmark, service, checktype, every,
                                  settings, common)
        reals: list[Real] = []
        seen: dict[tuple[str, int], int] = {}
        for setting in section.reals:
            for real in self.reals(setting, context):
                key = (real.address, real.port)
                if key in seen:
                    self.warn(setting.line, f"duplicate real server {real.label} in this virtual service "
                                            f"(also on line {seen[key]}): only the first is used "
                                            f"(ldirectord's second ipvsadm -a fails): {quote(setting.text)}")
                    continue
                seen[key] = setting.line
                reals.append(real)
        if fwmark is not None and get("announce", False):
            self.error(settings["announce"].line, "announce=yes needs a virtual service with an address: a "
                                                  "firewall mark has none to announce: "
                                                  f"{quote(settings['announce'].text)}")
        if not ok:
            return None

        fallback_name = "fallback6" if section.v6 else "fallback"
        fallback_setting = settings.get(fallback_name) or self.draft.settings.get(fallback_name)
        fallback = None
        if fallback_setting is not None:
            fallback = (self.fallback(fallback_setting, family, protocol, port) if fallback_name in settings
                        else self.inherit_fallback(fallback_setting, family, protocol, port))
        return Virtual(
            family=family, protocol=protocol, address=address, port=port, fwmark=fwmark,
            scheduler=get("scheduler", "wrr"), persistent=get("persistent"), netmask=get("netmask"),
            schedflags=get("schedflags", ()), ops=ops, reals=tuple(reals),
            fallback=fallback,
            fallbackcommand=get("fallbackcommand", g.fallbackcommand),
            notifycommand=get("notifycommand", g.notifycommand),
            quiescent=get("quiescent", g.quiescent),
            cleanstop=get("cleanstop", g.cleanstop),
            service=service, checktype=checktype, connect_every=every, servicename=get("servicename"),
            comment=get("comment"), monitorfile=get("monitorfile"),
            emailalert=get("emailalert", g.emailalert),
            emailalertfreq=get("emailalertfreq", g.emailalertfreq),
            emailalertstatus=get("emailalertstatus", g.emailalertstatus),
            smtp=get("smtp", g.smtp),
            slowstart=get("slowstart", g.slowstart),
            drain=get("drain", g.drain),
            depoolthreshold=get("depoolthreshold", g.depoolthreshold),
            line=section.line,
            announce=fwmark is None and get("announce", g.announce),
        )

    def protocol(self, written: VirtualAddress, settings: dict[str, Setting]) -> ServiceProtocol:
        """`protocol=` if it fits the virtual, else ldirectord's default (udp for port 53, fwm for marks)."""
        protocol = ServiceProtocol(defaults.protocol_for(written.port))
        fwmark = written.fwmark
        if "protocol" in settings:
            wanted = settings["protocol"].value
            if fwmark is not None and wanted != "fwm":
                self.error(settings["protocol"].line, "a firewall-mark virtual service needs protocol=fwm "
                           f"(or no protocol line): {quote(settings['protocol'].text)}")
            elif fwmark is None and wanted == "fwm":
                self.error(settings["protocol"].line,
                           "protocol=fwm needs a firewall-mark virtual (virtual=N); "
                           f"this one has an address and port: {quote(settings['protocol'].text)}")
            else:
                protocol = ServiceProtocol(wanted)
        return protocol

    def check_the_checks(self, section: Section, service: str, port: int, type_name: str,
                         checktype: CheckType) -> None:
        """Errors and warnings about the section's check settings as a whole."""
        settings = section.settings

        def get(name: str, default: Any = None) -> Any:
            return settings[name].value if name in settings else default

        if checktype is CheckType.NEGOTIATE and service not in services.SUPPORTED_SERVICES:
            if "service" in settings:
                self.error(settings["service"].line, f"service={service} is not supported yet: "
                                                     f"{quote(settings['service'].text)}")
            else:
                self.error(section.line, f"service={service} (ldirectord's default for port {port}) "
                                         "is not supported yet: set service= or checktype=connect in "
                                         f"this section: {quote(section.text)}")
        if checktype in (CheckType.EXTERNAL, CheckType.EXTERNAL_PERL) and "checkcommand" not in settings:
            self.warn(section.line, f"checktype={type_name} without checkcommand runs "
                                    f"{defaults.DEFAULT_CHECKCOMMAND} (always up)")
        if get("httpmethod") == "HEAD" and "receive" in settings:
            self.warn(settings["receive"].line, "httpmethod=HEAD gets no body, so receive can never match")
        self.tls.warn_unused(service, settings, self.warn)

    def inherit_fallback(self, setting: Setting, family: int, protocol: ServiceProtocol,
                         port: int) -> Fallback | None:
        """The global fallback, given this virtual's port when it names none.

        Errors in it were reported once, for the global line; don't repeat them per virtual.
        """
        line: FallbackLine = setting.value
        address = resolve_host(line.address.host, family, self.resolver)
        own_port = resolve_port(line.address.port, protocol) if line.address.port else port
        if address is None or own_port is None:
            return None
        return Fallback(address, own_port, Forward(line.forward), 1)

    # --- reals and their checks ---------------------------------------------------------

    def reals(self, setting: Setting, context: _VirtualContext) -> list[Real]:
        written: RealLine = setting.value
        first = self.address(written.first.host, context.family, setting, "real server")
        last = (self.address(written.last.host, context.family, setting, "real server")
                if written.last else None)
        port = self.port(written.first, context.protocol, setting, "real server", 0)
        if first is None or port is None or (written.last is not None and last is None):
            return []
        # A real without a port is `-r IP:0` in ldirectord's ipvsadm command: ipvsadm turns that into
        # the virtual's port for gate and ipip, and keeps 0 for masq (the kernel then sends to the
        # virtual's port). Real.port is what the table shows; the check goes where traffic goes.
        if port == 0 and context.fwmark is None and written.forward != "masq":
            port = context.port
        check_port = port or (context.port if context.fwmark is None else 0)
        addresses = [first]
        if written.last is not None and last is not None:
            lo, hi = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
            if lo > hi:
                self.error(setting.line, f"the range {written.first.host}->{written.last.host} runs "
                                         "backwards: "
                                         f"write the lower address first: {quote(setting.text)}")
                return []
            if hi - lo >= MAX_RANGE:
                self.error(setting.line, f"the range {written.first.host}->{written.last.host} has "
                                         f"{hi - lo + 1} addresses (at most {MAX_RANGE}): "
                                         f"{quote(setting.text)}")
                return []
            addresses = [f"{i >> 24}.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(lo, hi + 1)]
        if context.fwmark is None and written.forward != "masq" and port and port != context.port:
            self.warn(setting.line, f"{written.forward} cannot map ports: IPVS sends to port "
                                    f"{context.port} of the real server, not {port}; use masq to map ports")
        reals = []
        forward = Forward(written.forward)
        for address in addresses:
            check = self.check(address, check_port, written, setting, context)
            if check is None:
                return []
            reals.append(Real(address=address, port=port, forward=forward,
                              weight=written.weight, check=check, upper=written.upper,
                              lower=written.lower, line=setting.line))
        return reals

    def check_settings(self, settings: dict[str, Setting], protocol: ServiceProtocol, service: str,
                       checktype: CheckType, every: int) -> _CheckSettings:
        """What every real's check in a section shares: worked out once per section, not per real."""

        def get(name: str, default: Any = None) -> Any:
            return settings[name].value if name in settings else default

        if checktype is CheckType.CONNECT and protocol is ServiceProtocol.UDP:
            checktype = CheckType.PING  # ldirectord checks UDP "connect" with ping
        service = service if checktype is CheckType.NEGOTIATE else "none"
        g = self.globals
        own = get("checktimeout"), get("negotiatetimeout")  # this virtual's, then the global ones
        inherited = g.checktimeout, g.negotiatetimeout
        shared = {
            "type": checktype, "service": service,
            "protocol": defaults.check_protocol(protocol, checktype, service),
            "httpmethod": get("httpmethod", "GET"),
            "checktimeout": defaults.checktimeout(*own, *inherited),
            "negotiatetimeout": defaults.negotiatetimeout(*own, *inherited),
            "checkinterval": get("checkinterval", g.checkinterval),
            "failurecount": get("failurecount", g.failurecount),
            "successcount": get("successcount", g.successcount),
            "fastinterval": get("fastinterval", g.fastinterval),
            "checkcount": get("checkcount", g.checkcount),
            "connect_every": every,
            "login": get("login", defaults.default_login(service)),
            "passwd": get("passwd", defaults.default_passwd(service)),
            "database": get("database", ""), "secret": get("secret", ""),
        }
        receive, receive_re = get("receive", ("", None))
        command = (get("checkcommand", defaults.DEFAULT_CHECKCOMMAND)
                   if checktype in (CheckType.EXTERNAL, CheckType.EXTERNAL_PERL) else "")
        return _CheckSettings(
            checktype=checktype, service=service, shared=shared, request=get("request"), receive=receive,
            receive_re=receive_re, checkport=get("checkport"), virtualhost=get("virtualhost"),
            agentport=get("agentport", g.agentport), command=command)

    def check(self, address: str, port: int, written: RealLine, setting: Setting,
              context: _VirtualContext) -> CheckSpec | None:
        settings = context.settings
        common = context.common
        checktype = common.checktype
        service = common.service
        if written.request is not None:
            request_raw: str | None = written.request or None
            receive = written.receive or ""
            try:
                receive_re = translate(receive) if receive else None
            except PerlRegexError as exc:
                self.error(setting.line, f"the receive of this real server is a Perl regex that Python "
                                         f"cannot use: {exc}: {quote(setting.text)}")
                return None
        else:
            request_raw = common.request
            receive, receive_re = common.receive, common.receive_re
        target = self.web_target(service, request_raw, address,
                                 defaults.checkport(common.checkport, port, service), common.virtualhost,
                                 written, setting, context)
        if target is None:
            return None
        scheme, check_address, check_port, request, virtualhost = target
        negotiates = checktype is CheckType.NEGOTIATE and service != "none"
        needs_port = checktype is CheckType.CONNECT or negotiates
        if needs_port and not check_port:
            what = f"checktype={checktype.value}" if checktype is CheckType.CONNECT else f"service={service}"
            self.error(setting.line, f"real server {address} has no port, so the {what} check has none "
                                     "to connect to: add checkport=N to the virtual section (firewall-mark "
                                     f"reals usually carry no port): {quote(setting.text)}")
            return None
        if checktype is CheckType.PING or not checktype.runs:
            check_port = 0
        command_args: tuple[str, ...] = ()
        if checktype in (CheckType.EXTERNAL, CheckType.EXTERNAL_PERL):
            vip = str(context.fwmark) if context.fwmark is not None else bracketed(context.address or "")
            command_args = (vip, str(context.port), bracketed(address), str(port))
            check_port = check_port or port
        tls_service = "https" if scheme == "https" else service
        tls = None
        if tls_service in TLS_SERVICES and checktype is CheckType.NEGOTIATE:
            tls = self.tls.policy(tls_service, check_address, virtualhost,
                                  lambda name: settings.get(name) or self.draft.settings.get(name))
            if tls is None:
                return None
        return CheckSpec(
            family=context.family, address=check_address, port=check_port, request=request, receive=receive,
            receive_re=receive_re, scheme=scheme, virtualhost=virtualhost,
            agentport=written.agentport or common.agentport,
            command=common.command, command_args=command_args, tls=tls, **common.shared,
        )

    def web_target(self, service: str, request_raw: str | None, address: str, port: int,
                   virtualhost: str | None, written: RealLine, setting: Setting,
                   context: _VirtualContext) -> tuple[str, str, int, str, str | None] | None:
        """(scheme, address, port, request, virtualhost) the check uses; a URL request can move it.

        http/https: a request that is a URL (`http://host:port/path`) sends the check to that
        host and port; a path gains its leading `/`. http_proxy needs an absolute URL.
        """
        settings = context.settings
        request = request_raw or ""
        if service in ("http", "https"):
            request = request_raw or "/"
            url = _URL.fullmatch(request)
            if not url:
                path = request if request.startswith("/") else "/" + request
                return service, address, port, path, virtualhost
            scheme = url.group(1)
            host = url.group(2).strip("[]")
            where = setting if written.request else settings["request"]
            resolved = self.address(host, context.family, where, "check URL's host")
            if resolved is None:
                return None
            url_port = int(url.group(3)) if url.group(3) else (443 if scheme == "https" else 80)
            path = url.group(4) or "/"
            if not path.startswith("/"):
                path = "/" + path
            return scheme, resolved, url_port, path, virtualhost or host
        if service == "http_proxy":
            if not re.match(r"https?://", request):
                own_line = "request" in settings and not written.request
                line = settings["request"].line if own_line else setting.line
                self.error(line, "service=http_proxy needs an absolute request URL that the proxy "
                                 'fetches, such as request="http://www.example.com/"')
                return None
            return "http", address, port, request, virtualhost
        return "", address, port, request, virtualhost


@dataclass(frozen=True, slots=True)
class _CheckSettings:
    """A section's check settings as every real's CheckSpec takes them (the real may override some)."""

    checktype: CheckType  # as the check runs (connect on UDP is ping)
    service: str  # "none" unless the check negotiates
    shared: dict[str, Any]  # CheckSpec fields no real changes
    request: str | None  # request= as written
    receive: str  # receive= as written
    receive_re: str | None
    checkport: int | None
    virtualhost: str | None
    agentport: int  # the section's (or global) agentport; a real's agent:PORT wins
    command: str  # checkcommand for external checks, "" otherwise


@dataclass(frozen=True, slots=True)
class _VirtualContext:
    family: int
    protocol: ServiceProtocol
    address: str | None
    port: int
    fwmark: int | None
    service: str
    checktype: CheckType
    every: int
    settings: dict[str, Setting]
    common: _CheckSettings



def _once_per_name(resolver: Resolver) -> Resolver:
    """`resolver`, asked once per (name, family) in one load: a name used by many reals or virtuals
    (or one that times out) costs one lookup, and every use of it reads the same answer."""
    answers: dict[tuple[str, int], str | None] = {}

    def resolve(host: str, family: int) -> str | None:
        key = (host, family)
        if key not in answers:
            answers[key] = resolver(host, family)
        return answers[key]

    return resolve


def build(draft: Draft, resolver: Resolver) -> tuple[Config, list[ConfigIssue], list[ConfigIssue]]:
    """The Config, the errors (empty when valid) and the warnings, both in line order."""
    builder = _Builder(draft, resolver)
    settings = builder.global_settings()
    virtuals = builder.virtuals()
    errors = sorted(draft.errors + builder.errors, key=lambda i: i.line)
    warnings = sorted(draft.warnings + builder.warnings, key=lambda i: i.line)
    config = Config(path=draft.path, settings=settings, virtuals=virtuals, warnings=tuple(warnings))
    return config, errors, warnings

