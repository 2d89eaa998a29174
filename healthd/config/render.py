"""Config -> what `healthd check-config` prints: a readable summary, or one JSON object.

Secrets (passwd, secret) are never printed, only whether they are set.
"""

from __future__ import annotations

import json
from typing import Any

from healthd.checks.spec import CheckSpec, CheckType
from healthd.config.model import Config, Fallback, GlobalSettings, Real, Virtual


def _num(value: float | int | None) -> float | int | None:
    """5.0 -> 5, so that JSON and text show seconds as people write them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _fallback(fb: Fallback | None) -> dict[str, Any] | None:
    if fb is None:
        return None
    return {"address": fb.address, "port": fb.port, "forward": fb.forward, "weight": fb.weight}


def check_dict(c: CheckSpec) -> dict[str, Any]:
    return {
        "type": c.type.value, "service": c.service, "address": c.address, "checkport": c.port or None,
        "request": c.request or None, "receive": c.receive or None, "receive_re": c.receive_re,
        "scheme": c.scheme or None,
        "checktimeout": _num(c.checktimeout), "negotiatetimeout": _num(c.negotiatetimeout),
        "checkinterval": _num(c.checkinterval), "failurecount": c.failurecount,
        "checkcount": c.checkcount, "connect_every": c.connect_every,
        "virtualhost": c.virtualhost, "httpmethod": c.httpmethod,
        "login": c.login or None, "passwd_set": bool(c.passwd), "database": c.database or None,
        "secret_set": bool(c.secret), "command": c.command or None,
        "command_args": list(c.command_args) or None,
        "tls": c.tls.describe() if c.tls is not None else None,
        **_set({"successcount": c.successcount if c.successcount != 1 else None,
                "fastinterval": _num(c.fastinterval) if c.fastinterval else None,
                "agentport": c.agentport or None}),
    }


def _set(extensions: dict[str, Any]) -> dict[str, Any]:
    """healthd's extension directives, only those set: an ldirectord file renders as before."""
    return {k: v for k, v in extensions.items() if v is not None}


def real_dict(r: Real) -> dict[str, Any]:
    return {"address": r.address, "port": r.port, "forward": r.forward, "weight": r.weight,
            "lower": r.lower or None, "upper": r.upper or None, "line": r.line,
            "check": check_dict(r.check)}


def virtual_dict(v: Virtual) -> dict[str, Any]:
    return {
        "address": v.address, "port": v.port if v.fwmark is None else None, "fwmark": v.fwmark,
        "family": v.family, "protocol": v.protocol, "scheduler": v.scheduler,
        "persistent": v.persistent, "netmask": v.netmask, "schedflags": list(v.schedflags) or None,
        "ops": v.ops, "service": v.service, "checktype": v.checktype_text,
        "reals": [real_dict(r) for r in v.reals], "fallback": _fallback(v.fallback),
        "fallbackcommand": v.fallbackcommand, "quiescent": v.quiescent, "cleanstop": v.cleanstop,
        "announce": v.announce,
        "servicename": v.servicename, "comment": v.comment, "monitorfile": v.monitorfile,
        "emailalert": v.emailalert, "emailalertfreq": v.emailalertfreq,
        "emailalertstatus": list(v.emailalertstatus), "smtp": v.smtp, "line": v.line,
        **_set({"slowstart": _num(v.slowstart) if v.slowstart else None,
                "drain": _num(v.drain) if v.drain else None,
                "depoolthreshold": v.depoolthreshold or None}),
    }


def global_dict(g: GlobalSettings) -> dict[str, Any]:
    return {
        "checktimeout": _num(g.checktimeout), "negotiatetimeout": _num(g.negotiatetimeout),
        "checkinterval": _num(g.checkinterval), "checkcount": g.checkcount,
        "failurecount": g.failurecount, "fallback": _fallback(g.fallback),
        "fallback6": _fallback(g.fallback6), "fallbackcommand": g.fallbackcommand,
        "autoreload": g.autoreload, "callback": g.callback, "logfile": g.logfile,
        "execute": list(g.execute), "fork": g.fork, "supervised": g.supervised,
        "quiescent": g.quiescent, "readdquiescent": g.readdquiescent, "emailalert": g.emailalert,
        "emailalertfreq": g.emailalertfreq, "emailalertstatus": list(g.emailalertstatus),
        "emailalertfrom": g.emailalertfrom, "cleanstop": g.cleanstop, "smtp": g.smtp,
        "announce": g.announce,
        "maintenancedir": g.maintenancedir,
        **_set({"successcount": g.successcount if g.successcount != 1 else None,
                "fastinterval": _num(g.fastinterval) if g.fastinterval else None,
                "slowstart": _num(g.slowstart) if g.slowstart else None,
                "drain": _num(g.drain) if g.drain else None,
                "depoolthreshold": g.depoolthreshold or None, "agentport": g.agentport or None}),
    }


def to_json(config: Config) -> str:
    return json.dumps({
        "path": config.path,
        "global": global_dict(config.settings),
        "virtuals": [virtual_dict(v) for v in config.virtuals],
        "warnings": [str(w) for w in config.warnings],
    }, indent=2)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def describe_check(c: CheckSpec) -> str:
    """One line: what the check does and its timing."""
    if c.type is CheckType.ON:
        what = "none (always up)"
    elif c.type is CheckType.OFF:
        what = "none (never up)"
    elif c.type is CheckType.PING:
        what = f"ping {c.address} ({c.checkcount} attempt{'s' if c.checkcount != 1 else ''})"
    elif c.type is CheckType.CONNECT:
        what = f"{c.protocol if c.protocol != 'fwm' else 'tcp'} connect to {c.target}"
    elif c.type in (CheckType.EXTERNAL, CheckType.EXTERNAL_PERL):
        what = f"{c.type.value}: {c.command} {' '.join(c.command_args)}"
    elif c.service == "none":
        what = "negotiate, service none (always up)"
    elif c.scheme:
        host = f" Host: {c.virtualhost}" if c.virtualhost else ""
        url = c.request if c.service == "http_proxy" else f"{c.scheme}://{c.target}{c.request}"
        what = f"{c.service} {c.httpmethod} {url}{host}"
    else:
        req = f" request {c.request!r}" if c.request else ""
        what = f"{c.service} at {c.target}{req}"
    if c.receive:
        what += f", expect /{c.receive}/"
    if c.tls is not None:
        what += f", TLS verify {c.tls.describe()}"
    if c.connect_every:
        what += f", with {c.connect_every} connect checks between negotiations"
    timeout = c.deadline
    extra = ""
    if c.successcount != 1:
        extra += f", up after {c.successcount} passes"
    if c.fastinterval:
        extra += f", every {_num(c.fastinterval)}s while undecided"
    if c.agentport:
        extra += f", agent on port {c.agentport}"
    return (f"{what}; every {_num(c.checkinterval)}s, timeout {_num(timeout)}s, "
            f"down after {c.failurecount} failure{'s' if c.failurecount != 1 else ''}{extra}")


def to_text(config: Config) -> str:
    g = config.settings
    reals = sum(len(v.reals) for v in config.virtuals)
    lines = [
        f"{config.path}: valid, {len(config.virtuals)} virtual service"
        f"{'s' if len(config.virtuals) != 1 else ''}, {reals} real server{'s' if reals != 1 else ''}",
        f"global: checkinterval {_num(g.checkinterval)}s, failurecount {g.failurecount}, "
        f"quiescent {_yes(g.quiescent)}, autoreload {_yes(g.autoreload)}, cleanstop {_yes(g.cleanstop)}, "
        f"logfile {g.logfile}",
    ]
    for v in config.virtuals:
        extra = ""
        if v.persistent is not None:
            extra += f", persistent {v.persistent}s"
            if v.netmask:
                extra += f" mask {v.netmask}"
        if v.ops:
            extra += ", one-packet scheduling"
        lines += ["", f"virtual {v.label} {v.protocol}, scheduler {v.scheduler}{extra}, "
                      f"checktype {v.checktype_text}, service {v.service}, quiescent {_yes(v.quiescent)}"]
        safety = [f"{name} {value}" for name, value in (
            ("slowstart", f"{_num(v.slowstart)}s" if v.slowstart else ""),
            ("drain", f"{_num(v.drain)}s" if v.drain else ""),
            ("depoolthreshold", f"{v.depoolthreshold:g}" if v.depoolthreshold else "")) if value]
        if safety:
            lines.append(f"  healthd extensions: {', '.join(safety)}")
        if v.servicename or v.comment:
            lines.append(f"  {' - '.join(x for x in (v.servicename, v.comment) if x)}")
        for r in v.reals:
            thresholds = ""
            if r.lower or r.upper:
                thresholds = f", thresholds l:{r.lower} u:{r.upper}"
            lines.append(f"  real {r.label} {r.forward}, weight {r.weight}{thresholds}")
            lines.append(f"    check: {describe_check(r.check)}")
        if not v.reals:
            lines.append("  (no real servers)")
        if v.fallback:
            lines.append(f"  fallback {v.fallback.address}:{v.fallback.port} {v.fallback.forward}")
    if config.warnings:
        lines += ["", "warnings:"] + [f"  {w}" for w in config.warnings]
    return "\n".join(lines)
