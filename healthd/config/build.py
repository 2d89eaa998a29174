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

from healthd.checks import registry
from healthd.checks.spec import CheckSpec, CheckType
from healthd.config import defaults
from healthd.config import values as v
from healthd.config.lexer import quote
from healthd.config.lookup import Resolver, is_ip, resolve_host, resolve_port
from healthd.config.model import Config, ConfigIssue, Fallback, GlobalSettings, Real, Virtual
from healthd.config.parser import Draft, Section, Setting
from healthd.config.regex import PerlRegexError, translate
from healthd.config.values import FallbackLine, HostPort, RealLine

MAX_RANGE = 4096  # addresses one `a->b` may expand to; beyond that it is surely a typo
_URL = re.compile(r"/?(https?)://(\[[0-9A-Fa-f:.]+\]|[^/:?#\s]+)(?::(\d{1,5}))?([/?].*)?")


@dataclass
class _Builder:
    draft: Draft
    resolver: Resolver
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)

    def error(self, line: int, message: str) -> None:
        self.errors.append(ConfigIssue(self.draft.path, line, message))

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(ConfigIssue(self.draft.path, line, message))

    def g(self, name: str, default: Any = None) -> Any:
        s = self.draft.settings.get(name)
        return default if s is None else s.value

    # --- global ---------------------------------------------------------------------

    def global_settings(self) -> GlobalSettings:
        maintenancedir = self.g("maintenancedir")
        if maintenancedir is not None and not os.path.isdir(maintenancedir):
            self.warn(self.draft.settings["maintenancedir"].line,
                      f"maintenance directory {maintenancedir} does not exist (yet)")
        logfile = self.g("logfile", "/var/log/ldirectord.log")
        explicit = "logfile" in self.draft.settings and logfile.startswith("/")
        problem = v.logfile_problem(logfile) if explicit else None
        if problem is not None:
            self.warn(self.draft.settings["logfile"].line,
                      f"cannot open logfile {logfile}: {problem}; {v.LDIRECTORD_WOULD_NOT_START} (except "
                      "with -d or supervised=yes); healthd logs to the journal or stderr instead: "
                      f"{quote(self.draft.settings['logfile'].text)}")
        return GlobalSettings(
            checktimeout=self.g("checktimeout"),
            negotiatetimeout=self.g("negotiatetimeout"),
            checkinterval=self.g("checkinterval", defaults.DEFAULT_CHECKINTERVAL),
            checkcount=self.g("checkcount", 1),
            failurecount=self.g("failurecount", 1),
            fallback=self.fallback(self.draft.settings.get("fallback"), 4, "tcp", 0),
            fallback6=self.fallback(self.draft.settings.get("fallback6"), 6, "tcp", 0),
            fallbackcommand=self.g("fallbackcommand"),
            autoreload=self.g("autoreload", False),
            callback=self.g("callback"),
            logfile=logfile,
            execute=tuple(s.value for s in self.draft.execute),
            fork=self.g("fork", False),
            supervised=self.g("supervised", False),
            quiescent=self.g("quiescent", False),
            readdquiescent=self.g("readdquiescent", False),
            emailalert=self.g("emailalert"),
            emailalertfreq=self.g("emailalertfreq", 0),
            emailalertstatus=self.g("emailalertstatus", ("all",)),
            emailalertfrom=self.g("emailalertfrom"),
            cleanstop=self.g("cleanstop", True),
            smtp=self.g("smtp"),
            maintenancedir=maintenancedir,
        )

    def fallback(self, setting: Setting | None, family: int, protocol: str,
                 default_port: int) -> Fallback | None:
        if setting is None:
            return None
        fb: FallbackLine = setting.value
        address = self.address(fb.address.host, family, setting, "fallback server")
        port = self.port(fb.address, protocol, setting, "fallback server", default_port)
        if address is None or port is None:
            return None
        return Fallback(address, port, fb.forward, 1)

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

    def port(self, hp: HostPort, protocol: str, where: Setting, what: str, default: int) -> int | None:
        if not hp.port:
            return default
        port = resolve_port(hp.port, protocol)
        if port is None:
            self.error(where.line, f"unknown port or service name {hp.port!r} for the {what}: "
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
        s = section.settings

        def get(name: str, default: Any = None) -> Any:
            return s[name].value if name in s else default

        where = Setting(None, section.line, section.text)
        family = 6 if section.v6 else 4
        va = section.address
        fwmark = va.fwmark
        protocol = defaults.protocol_for(va.port)
        if "protocol" in s:
            wanted = s["protocol"].value
            if fwmark is not None and wanted != "fwm":
                self.error(s["protocol"].line, "a firewall-mark virtual service needs protocol=fwm "
                                               f"(or no protocol line): {quote(s['protocol'].text)}")
            elif fwmark is None and wanted == "fwm":
                self.error(s["protocol"].line, "protocol=fwm needs a firewall-mark virtual (virtual=N); "
                                               f"this one has an address and port: "
                                               f"{quote(s['protocol'].text)}")
            else:
                protocol = wanted
        address: str | None = None
        port = 0
        ok = True
        if fwmark is None:
            assert va.host is not None and va.port is not None
            address = self.address(va.host, family, where, "virtual service")
            resolved_port = self.port(HostPort(va.host, va.port), protocol, where, "virtual service", 0)
            # Port 0 is "every port", which IPVS allows for a persistent service only (ipvsadm refuses
            # the other kind, so ldirectord's virtual never exists).
            if resolved_port == 0 and "persistent" not in s:
                self.error(section.line, "the virtual service's port must be between 1 and 65535 (port 0, "
                                         f"every port, needs persistent=): {quote(section.text)}")
            ok = address is not None and resolved_port is not None and (
                resolved_port > 0 or "persistent" in s)
            port = resolved_port or 0
        ops = get("ops", False) and protocol == "udp"
        if get("ops", False) and not ops:
            self.warn(s["ops"].line, f"ops=yes (one-packet scheduling) applies to UDP only: ignored for this "
                                     f"{protocol} service, as ldirectord ignores it: {quote(s['ops'].text)}")
        service = get("service") or (defaults.service_for_port(port) if fwmark is None else "none")
        type_name, ctype, every = get("checktype", ("negotiate", CheckType.NEGOTIATE, 0))
        if ctype is CheckType.NEGOTIATE and service not in registry.SUPPORTED_SERVICES:
            if "service" in s:
                self.error(s["service"].line, f"service={service} is not supported yet: "
                                              f"{quote(s['service'].text)}")
            else:
                self.error(section.line, f"service={service} (ldirectord's default for port {port}) "
                                         "is not supported yet: set service= or checktype=connect in "
                                         f"this section: {quote(section.text)}")
        if ctype in (CheckType.EXTERNAL, CheckType.EXTERNAL_PERL) and "checkcommand" not in s:
            self.warn(section.line, f"checktype={type_name} without checkcommand runs "
                                    f"{defaults.DEFAULT_CHECKCOMMAND} (always up)")
        if get("httpmethod") == "HEAD" and "receive" in s:
            self.warn(s["receive"].line, "httpmethod=HEAD gets no body, so receive can never match")

        vcontext = _VirtualContext(family, protocol, address, port, fwmark, service, ctype, every, s)
        reals: list[Real] = []
        seen: dict[tuple[str, int], int] = {}
        for setting in section.reals:
            for real in self.reals(setting, vcontext):
                key = (real.address, real.port)
                if key in seen:
                    self.warn(setting.line, f"duplicate real server {real.label} in this virtual service "
                                            f"(also on line {seen[key]}): only the first is used "
                                            f"(ldirectord's second ipvsadm -a fails): {quote(setting.text)}")
                    continue
                seen[key] = setting.line
                reals.append(real)
        if not ok:
            return None

        fb_name = "fallback6" if section.v6 else "fallback"
        fb_setting = s.get(fb_name) or self.draft.settings.get(fb_name)
        fallback = None
        if fb_setting is not None:
            fallback = (self.fallback(fb_setting, family, protocol, port) if fb_name in s
                        else self.inherit_fallback(fb_setting, family, protocol, port))
        return Virtual(
            family=family, protocol=protocol, address=address, port=port, fwmark=fwmark,
            scheduler=get("scheduler", "wrr"), persistent=get("persistent"), netmask=get("netmask"),
            schedflags=get("schedflags", ()), ops=ops, reals=tuple(reals),
            fallback=fallback,
            fallbackcommand=get("fallbackcommand", self.g("fallbackcommand")),
            quiescent=get("quiescent", self.g("quiescent", False)),
            cleanstop=get("cleanstop", self.g("cleanstop", True)),
            service=service, checktype=type_name, servicename=get("servicename"),
            comment=get("comment"), monitorfile=get("monitorfile"),
            emailalert=get("emailalert", self.g("emailalert")),
            emailalertfreq=get("emailalertfreq", self.g("emailalertfreq", 0)),
            emailalertstatus=get("emailalertstatus", self.g("emailalertstatus", ("all",))),
            smtp=get("smtp", self.g("smtp")), line=section.line,
        )

    def inherit_fallback(self, setting: Setting, family: int, protocol: str, port: int) -> Fallback | None:
        """The global fallback, given this virtual's port when it names none.

        Errors in it were reported once, for the global line; don't repeat them per virtual.
        """
        fb: FallbackLine = setting.value
        address = resolve_host(fb.address.host, family, self.resolver)
        fb_port = resolve_port(fb.address.port, protocol) if fb.address.port else port
        if address is None or fb_port is None:
            return None
        return Fallback(address, fb_port, fb.forward, 1)

    # --- reals and their checks ---------------------------------------------------------

    def reals(self, setting: Setting, vc: _VirtualContext) -> list[Real]:
        rl: RealLine = setting.value
        first = self.address(rl.first.host, vc.family, setting, "real server")
        last = self.address(rl.last.host, vc.family, setting, "real server") if rl.last else None
        port = self.port(rl.first, vc.protocol, setting, "real server", 0)
        if first is None or port is None or (rl.last is not None and last is None):
            return []
        # A real without a port is `-r IP:0` in ldirectord's ipvsadm command: ipvsadm turns that into
        # the virtual's port for gate and ipip, and keeps 0 for masq (the kernel then sends to the
        # virtual's port). Real.port is what the table shows; the check goes where traffic goes.
        if port == 0 and vc.fwmark is None and rl.forward != "masq":
            port = vc.port
        check_port = port or (vc.port if vc.fwmark is None else 0)
        addresses = [first]
        if rl.last is not None and last is not None:
            lo, hi = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
            if lo > hi:
                self.error(setting.line, f"the range {rl.first.host}->{rl.last.host} runs backwards: "
                                         f"write the lower address first: {quote(setting.text)}")
                return []
            if hi - lo >= MAX_RANGE:
                self.error(setting.line, f"the range {rl.first.host}->{rl.last.host} has {hi - lo + 1} "
                                         f"addresses (at most {MAX_RANGE}): {quote(setting.text)}")
                return []
            addresses = [str(ipaddress.IPv4Address(i)) for i in range(lo, hi + 1)]
        if vc.fwmark is None and rl.forward != "masq" and port and port != vc.port:
            self.warn(setting.line, f"{rl.forward} cannot map ports: IPVS sends to port {vc.port} of "
                                    f"the real server, not {port}; use masq to map ports")
        reals = []
        for address in addresses:
            check = self.check(address, check_port, rl, setting, vc)
            if check is None:
                return []
            reals.append(Real(address=address, port=port, forward=rl.forward, weight=rl.weight,
                              check=check, upper=rl.upper, lower=rl.lower, line=setting.line))
        return reals

    def check(self, address: str, port: int, rl: RealLine, setting: Setting,
              vc: _VirtualContext) -> CheckSpec | None:
        s = vc.settings

        def get(name: str, default: Any = None) -> Any:
            return s[name].value if name in s else default

        ctype = vc.ctype
        if ctype is CheckType.CONNECT and vc.protocol == "udp":
            ctype = CheckType.PING  # ldirectord checks UDP "connect" with ping
        service = vc.service if ctype is CheckType.NEGOTIATE else "none"
        if rl.request is not None:
            request_raw: str | None = rl.request or None
            receive = rl.receive or ""
            try:
                receive_re = translate(receive) if receive else None
            except PerlRegexError as exc:
                self.error(setting.line, f"the receive of this real server is a Perl regex that Python "
                                         f"cannot use: {exc}: {quote(setting.text)}")
                return None
        else:
            request_raw = get("request")
            receive, receive_re = get("receive", ("", None))
        check_address = address
        check_port = defaults.checkport(get("checkport"), port, service)
        virtualhost = get("virtualhost")
        scheme = ""
        request = request_raw or ""
        if service in ("http", "https"):
            scheme = service
            request = request_raw or "/"
            url = _URL.fullmatch(request)
            if url:
                scheme = url.group(1)
                host = url.group(2).strip("[]")
                resolved = self.address(host, vc.family, setting if rl.request else s["request"],
                                        "check URL's host")
                if resolved is None:
                    return None
                check_address = resolved
                check_port = int(url.group(3)) if url.group(3) else (443 if scheme == "https" else 80)
                request = url.group(4) or "/"
                if not request.startswith("/"):
                    request = "/" + request
                virtualhost = virtualhost or host
            elif not request.startswith("/"):
                request = "/" + request
        elif service == "http_proxy":
            scheme = "http"
            if not re.match(r"https?://", request):
                line = s["request"].line if "request" in s and not rl.request else setting.line
                self.error(line, "service=http_proxy needs an absolute request URL that the proxy "
                                       'fetches, such as request="http://www.example.com/"')
                return None
        needs_port = ctype is CheckType.CONNECT or (ctype is CheckType.NEGOTIATE and service != "none")
        if needs_port and not check_port:
            what = f"checktype={ctype.value}" if ctype is CheckType.CONNECT else f"service={service}"
            self.error(setting.line, f"real server {address} has no port, so the {what} check has none "
                                     "to connect to: add checkport=N to the virtual section (firewall-mark "
                                     f"reals usually carry no port): {quote(setting.text)}")
            return None
        if ctype in (CheckType.PING, CheckType.ON, CheckType.OFF):
            check_port = 0
        command = ""
        command_args: tuple[str, ...] = ()
        if ctype in (CheckType.EXTERNAL, CheckType.EXTERNAL_PERL):
            command = get("checkcommand", defaults.DEFAULT_CHECKCOMMAND)
            vip = str(vc.fwmark) if vc.fwmark is not None else _bracket(vc.address or "", vc.family)
            command_args = (vip, str(vc.port), _bracket(address, vc.family), str(port))
            check_port = check_port or port
        g = self.g
        vct, vnt = get("checktimeout"), get("negotiatetimeout")
        gct, gnt = g("checktimeout"), g("negotiatetimeout")
        return CheckSpec(
            type=ctype, service=service, protocol=vc.protocol, family=vc.family,
            address=check_address, port=check_port, request=request, receive=receive,
            receive_re=receive_re, scheme=scheme, virtualhost=virtualhost,
            httpmethod=get("httpmethod", "GET"),
            checktimeout=defaults.checktimeout(vct, vnt, gct, gnt),
            negotiatetimeout=defaults.negotiatetimeout(vct, vnt, gct, gnt),
            checkinterval=get("checkinterval", g("checkinterval", defaults.DEFAULT_CHECKINTERVAL)),
            failurecount=get("failurecount", g("failurecount", 1)),
            checkcount=get("checkcount", g("checkcount", 1)),
            connect_every=vc.every,
            login=get("login", defaults.default_login(service)),
            passwd=get("passwd", defaults.default_passwd(service)),
            database=get("database", ""), secret=get("secret", ""),
            command=command, command_args=command_args,
        )


@dataclass(frozen=True, slots=True)
class _VirtualContext:
    family: int
    protocol: str
    address: str | None
    port: int
    fwmark: int | None
    service: str
    ctype: CheckType
    every: int
    settings: dict[str, Setting]


def _bracket(address: str, family: int) -> str:
    return f"[{address}]" if family == 6 else address


def build(draft: Draft, resolver: Resolver) -> tuple[Config, list[ConfigIssue], list[ConfigIssue]]:
    """The Config, the errors (empty when valid) and the warnings, both in line order."""
    builder = _Builder(draft, resolver)
    settings = builder.global_settings()
    virtuals = builder.virtuals()
    errors = sorted(draft.errors + builder.errors, key=lambda i: i.line)
    warnings = sorted(draft.warnings + builder.warnings, key=lambda i: i.line)
    config = Config(path=draft.path, settings=settings, virtuals=virtuals, warnings=tuple(warnings))
    return config, errors, warnings

