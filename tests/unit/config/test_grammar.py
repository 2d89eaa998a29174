"""Every form of every directive: what a valid line resolves to."""

from __future__ import annotations

from typing import Any

import pytest

from healthd.checks.spec import CheckType
from healthd.config import Config, ConfigError

from .conftest import cfg, one_virtual


def first_check(c: Config) -> Any:
    return c.virtuals[0].reals[0].check


# --- virtual= forms ---------------------------------------------------------------------

VIRTUAL_FORMS = [
    # head, (family, protocol, address, port, fwmark, service)
    ("virtual=10.0.0.1:80", (4, "tcp", "10.0.0.1", 80, None, "http")),
    ("virtual = 10.0.0.1:80", (4, "tcp", "10.0.0.1", 80, None, "http")),
    ("virtual=10.0.0.1:http", (4, "tcp", "10.0.0.1", 80, None, "http")),
    ("virtual=10.0.0.1:https", (4, "tcp", "10.0.0.1", 443, None, "https")),
    ("virtual=www.test:8080", (4, "tcp", "10.0.0.80", 8080, None, "none")),
    ("virtual=localhost:3128", (4, "tcp", "127.0.0.1", 3128, None, "http_proxy")),
    ("virtual=10.0.0.1:53", (4, "udp", "10.0.0.1", 53, None, "dns")),
    ("virtual=10.0.0.1:domain", (4, "udp", "10.0.0.1", 53, None, "dns")),
    ("virtual=99", (4, "fwm", None, 0, 99, "none")),
    ("virtual6=[2001:db8::5]:80", (6, "tcp", "2001:db8::5", 80, None, "http")),
    ("virtual6=[2001:DB8:0::5]:http", (6, "tcp", "2001:db8::5", 80, None, "http")),
    ("virtual6=7", (6, "fwm", None, 0, 7, "none")),
]


@pytest.mark.parametrize(("head", "expected"), VIRTUAL_FORMS)
def test_virtual_forms(head: str, expected: tuple[Any, ...]) -> None:
    real = "real6=[2001:db8::2]:80 gate" if head.startswith("virtual6") else "real=10.0.0.2:80 gate"
    # A negotiate check of an unsupported default service would be refused: connect keeps it neutral.
    v = one_virtual(f"{real}\nchecktype=connect", head=head).virtuals[0]
    assert (v.family, v.protocol, v.address, v.port, v.fwmark, v.service) == expected


# --- real= forms ------------------------------------------------------------------------

REAL_FORMS = [
    # real line, [(address, port, forward, weight, lower, upper)]
    ("real=10.0.0.2:80 gate", [("10.0.0.2", 80, "gate", 1, 0, 0)]),
    ("real=10.0.0.2:80 masq 5", [("10.0.0.2", 80, "masq", 5, 0, 0)]),
    ("real=10.0.0.2:8080 masq 0", [("10.0.0.2", 8080, "masq", 0, 0, 0)]),
    ("real=10.0.0.2 ipip", [("10.0.0.2", 80, "ipip", 1, 0, 0)]),
    ("real=10.0.0.2 masq", [("10.0.0.2", 0, "masq", 1, 0, 0)]),  # ldirectord's table: 10.0.0.2:0
    ("real=10.0.0.2 gate -w 3", [("10.0.0.2", 80, "gate", 3, 0, 0)]),
    ("real=10.0.0.2:80 gate l:5", [("10.0.0.2", 80, "gate", 1, 5, 0)]),
    ("real=10.0.0.2:http gate", [("10.0.0.2", 80, "gate", 1, 0, 0)]),
    ("real = web1.test:80  gate\t3", [("10.0.0.21", 80, "gate", 3, 0, 0)]),
    ("real=localhost:80 masq", [("127.0.0.1", 80, "masq", 1, 0, 0)]),
    ("real=10.0.0.2:80 gate 2 l:10 u:100", [("10.0.0.2", 80, "gate", 2, 10, 100)]),
    ("real=10.0.0.2:80 gate u:7", [("10.0.0.2", 80, "gate", 1, 0, 7)]),
    ("real=10.0.0.254->10.0.1.1:80 gate 4", [
        ("10.0.0.254", 80, "gate", 4, 0, 0), ("10.0.0.255", 80, "gate", 4, 0, 0),
        ("10.0.1.0", 80, "gate", 4, 0, 0), ("10.0.1.1", 80, "gate", 4, 0, 0)]),
    ("real=10.0.0.7->10.0.0.7:80 gate", [("10.0.0.7", 80, "gate", 1, 0, 0)]),
    ("real=web1.test->web3.test:80 gate", [
        ("10.0.0.21", 80, "gate", 1, 0, 0), ("10.0.0.22", 80, "gate", 1, 0, 0),
        ("10.0.0.23", 80, "gate", 1, 0, 0)]),
    ("real=10.0.0.2::80 gate", [("10.0.0.2", 80, "gate", 1, 0, 0)]),  # ldirectord's sample typo
]


@pytest.mark.parametrize(("line", "expected"), REAL_FORMS)
def test_real_forms(line: str, expected: list[tuple[Any, ...]]) -> None:
    reals = one_virtual(line).virtuals[0].reals
    assert [(r.address, r.port, r.forward, r.weight, r.lower, r.upper) for r in reals] == expected


def test_real6_forms() -> None:
    v = one_virtual("real6=[2001:db8::4]:8080 masq 3\nreal6=[2001:db8::6] gate",
                    head="virtual6=[2001:db8::5]:80").virtuals[0]
    assert [(r.address, r.port, r.forward, r.weight, r.label) for r in v.reals] == [
        ("2001:db8::4", 8080, "masq", 3, "[2001:db8::4]:8080"),
        ("2001:db8::6", 80, "gate", 1, "[2001:db8::6]:80"),
    ]
    assert v.reals[0].check.family == 6 and v.reals[0].check.target == "[2001:db8::4]:8080"


def test_v6_host_names_resolve_to_ipv6() -> None:
    v = one_virtual("real6=v6.test:8080 masq\nfallback6=localhost",
                    head="virtual6=[2001:db8::5]:80").virtuals[0]
    assert (v.reals[0].address, v.reals[0].port, v.fallback.address, v.fallback.port) == (
        "2001:db8::99", 8080, "::1", 80)


def test_fwmark_reals_keep_port_zero_and_check_the_service_port() -> None:
    v = one_virtual("real=10.0.0.2 gate\nreal=10.0.0.3:8080 gate\nservice=http", head="virtual=5").virtuals[0]
    assert [(r.port, r.check.port) for r in v.reals] == [(0, 80), (8080, 8080)]


def test_per_real_request_and_receive_override_the_virtuals() -> None:
    v = one_virtual('real=10.0.0.2:80 gate 1 "health", "^up$"\nreal=10.0.0.3:80 gate\n'
                    'request="index.html"\nreceive="Test"').virtuals[0]
    a, b = (r.check for r in v.reals)
    assert (a.request, a.receive, a.receive_re) == ("/health", "^up$", "^up$")
    assert (b.request, b.receive) == ("/index.html", "Test")


def test_per_real_url_overrides_where_the_check_goes() -> None:
    v = one_virtual('real=10.0.0.2:80 gate 1 "http://www.test:8081/status?x=1", "alive"').virtuals[0]
    c = v.reals[0].check
    assert (c.address, c.port, c.request, c.virtualhost, c.scheme) == (
        "10.0.0.80", 8081, "/status?x=1", "www.test", "http")
    assert v.reals[0].address == "10.0.0.2"


def test_https_url_default_port() -> None:
    c = first_check(one_virtual('real=10.0.0.2:443 gate 1 "https://10.0.0.9", ""',
                                head="virtual=10.0.0.1:443"))
    assert (c.scheme, c.address, c.port, c.request, c.receive_re) == ("https", "10.0.0.9", 443, "/", None)


# --- check settings ---------------------------------------------------------------------

CHECK_FIELDS = [
    # body, head, {field: value}
    ("real=10.0.0.2:80 gate", "virtual=10.0.0.1:80",
     {"type": CheckType.NEGOTIATE, "service": "http", "request": "/", "receive": "", "receive_re": None,
      "scheme": "http", "httpmethod": "GET", "virtualhost": None, "checktimeout": 5.0,
      "negotiatetimeout": 30.0, "checkinterval": 10.0, "failurecount": 1, "checkcount": 1,
      "port": 80, "protocol": "tcp", "connect_every": 0, "command": "", "command_args": ()}),
    ("real=10.0.0.2:80 gate\nrequest=\"/a#b\"\nreceive=\"x # y\"", "virtual=10.0.0.1:80",
     {"request": "/a#b", "receive": "x # y"}),
    ("real=10.0.0.2:80 gate\nrequest=ok.html\nreceive=ok", "virtual=10.0.0.1:80",
     {"request": "/ok.html", "receive": "ok"}),
    ("real=10.0.0.2:443 gate\nservice=https\nvirtualhost=\"www.test\"\nhttpmethod=head",
     "virtual=10.0.0.1:443", {"scheme": "https", "virtualhost": "www.test", "httpmethod": "HEAD"}),
    ("real=10.0.0.2:80 gate\ncheckport=8080", "virtual=10.0.0.1:80", {"port": 8080}),
    ("real=10.0.0.2:80 gate\nchecktype=connect", "virtual=10.0.0.1:80",
     {"type": CheckType.CONNECT, "service": "none", "port": 80}),
    ("real=10.0.0.2:53 gate\nchecktype=connect", "virtual=10.0.0.1:53",
     {"type": CheckType.PING, "port": 0, "protocol": "udp"}),
    ("real=10.0.0.2:80 gate\nchecktype=ping\ncheckcount=3", "virtual=10.0.0.1:80",
     {"type": CheckType.PING, "port": 0, "checkcount": 3}),
    ("real=10.0.0.2:80 gate\nchecktype=on", "virtual=10.0.0.1:80", {"type": CheckType.ON, "port": 0}),
    ("real=10.0.0.2:80 gate\nchecktype=off", "virtual=10.0.0.1:80", {"type": CheckType.OFF}),
    ("real=10.0.0.2:80 gate\nchecktype=5", "virtual=10.0.0.1:80",
     {"type": CheckType.NEGOTIATE, "connect_every": 5, "service": "http"}),
    ("real=10.0.0.2:8080 masq\nchecktype=external\ncheckcommand=\"/usr/local/bin/chk\"",
     "virtual=10.0.0.1:80",
     {"type": CheckType.EXTERNAL, "command": "/usr/local/bin/chk",
      "command_args": ("10.0.0.1", "80", "10.0.0.2", "8080"), "service": "none"}),
    ("real=10.0.0.2 gate\nchecktype=external-perl\ncheckcommand=/x.pl", "virtual=3",
     {"type": CheckType.EXTERNAL_PERL, "command_args": ("3", "0", "10.0.0.2", "0")}),
    ("real6=[2001:db8::2]:80 gate\nchecktype=external", "virtual6=[2001:db8::1]:80",
     {"command": "/bin/true", "command_args": ("[2001:db8::1]", "80", "[2001:db8::2]", "80")}),
    ("real=10.0.0.2:80 gate\nchecktype=connect\nchecktimeout=2\nfailurecount=3\ncheckinterval=4",
     "virtual=10.0.0.1:80", {"checktimeout": 2.0, "negotiatetimeout": 2.0, "failurecount": 3,
                             "checkinterval": 4.0}),
    ("real=10.0.0.2:80 gate\nnegotiatetimeout=7.5", "virtual=10.0.0.1:80",
     {"checktimeout": 7.5, "negotiatetimeout": 7.5}),
    ("real=10.0.0.2:80 gate\nservice=simpletcp\nrequest=\"PING\\n\"\nreceive=\"PONG\"", "virtual=10.0.0.1:80",
     {"service": "simpletcp", "request": "PING\\n", "scheme": ""}),
    ("real=10.0.0.2:3128 gate\nrequest=\"http://www.test/\"", "virtual=10.0.0.1:3128",
     {"service": "http_proxy", "request": "http://www.test/", "address": "10.0.0.2", "port": 3128}),
    ("real=10.0.0.2:80 gate\nservice=none", "virtual=10.0.0.1:80", {"service": "none", "port": 80}),
    ("real=10.0.0.2:80 gate\nlogin=\"u\"\npasswd=\"p\"\ndatabase=\"d\"\nsecret=\"s\"",
     "virtual=10.0.0.1:80", {"login": "u", "passwd": "p", "database": "d", "secret": "s"}),
]


@pytest.mark.parametrize(("body", "head", "fields"), CHECK_FIELDS)
def test_check_settings(body: str, head: str, fields: dict[str, Any]) -> None:
    check = first_check(one_virtual(body, head=head))
    assert {name: getattr(check, name) for name in fields} == fields


def test_ftp_and_sip_credentials_default_like_ldirectord(monkeypatch: pytest.MonkeyPatch) -> None:
    from healthd.checks import registry
    from healthd.checks.spec import KNOWN_SERVICES

    monkeypatch.setattr(registry, "SUPPORTED_SERVICES", KNOWN_SERVICES)
    monkeypatch.setenv("HOSTNAME", "director")
    ftp = first_check(one_virtual("real=10.0.0.2:21 gate", head="virtual=10.0.0.1:21"))
    sip = first_check(one_virtual("real=10.0.0.2:5060 gate", head="virtual=10.0.0.1:5060"))
    assert (ftp.service, ftp.login, ftp.passwd, ftp.request) == (
        "ftp", "anonymous", "ldirectord@director", "")
    assert (sip.service, sip.login, sip.passwd) == ("sip", "ldirectord@director", "")


TIMEOUTS = [
    # globals, virtual lines, (checktimeout, negotiatetimeout): ldirectord's resolution order
    ("", "", (5.0, 30.0)),
    ("checktimeout=3", "", (3.0, 3.0)),
    ("negotiatetimeout=20", "", (20.0, 20.0)),
    ("checktimeout=3\nnegotiatetimeout=20", "", (3.0, 20.0)),
    ("checktimeout=3\nnegotiatetimeout=20", "negotiatetimeout=9", (9.0, 9.0)),
    ("checktimeout=3\nnegotiatetimeout=20", "checktimeout=4", (4.0, 4.0)),
    ("checktimeout=3", "negotiatetimeout=9", (9.0, 9.0)),
    ("", "checktimeout=4\nnegotiatetimeout=9", (4.0, 9.0)),
]


@pytest.mark.parametrize(("globals_", "lines", "expected"), TIMEOUTS)
def test_timeout_resolution_order(globals_: str, lines: str, expected: tuple[float, float]) -> None:
    c = first_check(one_virtual(f"real=10.0.0.2:80 gate\n{lines}", globals_=globals_))
    assert (c.checktimeout, c.negotiatetimeout) == expected


# --- virtual settings -------------------------------------------------------------------

VIRTUAL_FIELDS = [
    ("", {"scheduler": "wrr", "persistent": None, "netmask": None, "quiescent": False, "cleanstop": True,
          "ops": False, "checktype": "negotiate", "fallback": None, "schedflags": ()}),
    ("scheduler=rr\npersistent=600\nnetmask=255.255.255.0", {"scheduler": "rr", "persistent": 600,
                                                             "netmask": "255.255.255.0"}),
    ("scheduler=wlc\nscheduler=sh", {"scheduler": "sh"}),  # the later line wins, as in ldirectord
    ("quiescent=yes\ncleanstop=no", {"quiescent": True, "cleanstop": False}),
    ("schedflags=sh-fallback,sh-port", {"schedflags": ("sh-fallback", "sh-port")}),
    ("servicename=Web Site\ncomment=a comment\nmonitorfile=\"/tmp/m.log\"",
     {"servicename": "Web Site", "comment": "a comment", "monitorfile": "/tmp/m.log"}),
    ("fallbackcommand=\"/bin/fb\"\nemailalert=\"a@b.c\"\nemailalertfreq=60\n"
     "emailalertstatus=starting, stopping\nsmtp=mail.test",
     {"fallbackcommand": "/bin/fb", "emailalert": "a@b.c", "emailalertfreq": 60,
      "emailalertstatus": ("starting", "stopping"), "smtp": "mail.test"}),
]


@pytest.mark.parametrize(("lines", "fields"), VIRTUAL_FIELDS)
def test_virtual_settings(lines: str, fields: dict[str, Any]) -> None:
    v = one_virtual(f"real=10.0.0.2:80 gate\n{lines}").virtuals[0]
    assert {name: getattr(v, name) for name in fields} == fields


def test_udp_ops_and_v6_netmask() -> None:
    v = one_virtual("real=10.0.0.2:53 gate\nops=yes\nchecktype=connect",
                    head="virtual=10.0.0.1:53").virtuals[0]
    assert (v.protocol, v.ops) == ("udp", True)
    v6 = one_virtual("real6=[2001:db8::2]:80 gate\npersistent=60\nnetmask=64",
                     head="virtual6=[2001:db8::1]:80").virtuals[0]
    assert v6.netmask == "64"


def test_virtual_inherits_global_settings() -> None:
    c = one_virtual("real=10.0.0.2:80 gate", globals_=(
        "quiescent=yes\ncleanstop=no\nfallback=127.0.0.1 masq\nfallbackcommand=/bin/fb\n"
        "emailalert=ops@test\nemailalertfreq=5\nemailalertstatus=none\nsmtp=10.0.0.25\n"
        "checkinterval=2\nfailurecount=4"))
    v = c.virtuals[0]
    assert (v.quiescent, v.cleanstop, v.fallbackcommand, v.emailalert, v.emailalertfreq,
            v.emailalertstatus, v.smtp) == (True, False, "/bin/fb", "ops@test", 5, ("none",), "10.0.0.25")
    assert (v.fallback.address, v.fallback.port, v.fallback.forward) == ("127.0.0.1", 80, "masq")
    assert (v.reals[0].check.checkinterval, v.reals[0].check.failurecount) == (2.0, 4)
    assert c.settings.fallback is not None and c.settings.fallback.port == 0


def test_virtual_fallback_overrides_global_and_defaults_to_gate() -> None:
    c = one_virtual("real=10.0.0.2:80 gate\nfallback=127.0.0.2:8080", globals_="fallback=127.0.0.1:80 masq")
    fb = c.virtuals[0].fallback
    assert (fb.address, fb.port, fb.forward, fb.weight) == ("127.0.0.2", 8080, "gate", 1)


def test_fallback6_applies_to_v6_virtuals_only() -> None:
    c = cfg("fallback=127.0.0.1:80\nfallback6=[::1]:80\n"
            "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n"
            "virtual6=[2001:db8::1]:80\n\treal6=[2001:db8::2]:80 gate\n")
    assert [v.fallback.address for v in c.virtuals if v.fallback] == ["127.0.0.1", "::1"]


# --- global settings --------------------------------------------------------------------

GLOBAL_FIELDS = [
    ("", {"checktimeout": None, "negotiatetimeout": None, "checkinterval": 10.0, "checkcount": 1,
          "failurecount": 1, "autoreload": False, "callback": None, "logfile": "/var/log/ldirectord.log",
          "execute": (), "fork": False, "supervised": False, "quiescent": False, "readdquiescent": False,
          "emailalert": None, "emailalertfreq": 0, "emailalertstatus": ("all",), "emailalertfrom": None,
          "cleanstop": True, "smtp": None, "maintenancedir": None, "fallback": None, "fallback6": None}),
    ("checktimeout=3\nnegotiatetimeout = 20\ncheckinterval=1\nfailurecount=2\ncheckcount=2",
     {"checktimeout": 3.0, "negotiatetimeout": 20.0, "checkinterval": 1.0, "failurecount": 2,
      "checkcount": 2}),
    ("autoreload=yes\ncallback=\"/usr/bin/cb\"\nfork=yes\nsupervised=yes\nquiescent=yes\nreaddquiescent=yes",
     {"autoreload": True, "callback": "/usr/bin/cb", "fork": True, "supervised": True, "quiescent": True,
      "readdquiescent": True}),
    ("supervised", {"supervised": True}),
    ("logfile=\"local0\"", {"logfile": "local0"}),
    ("logfile=\"/var/log/healthd.log\"", {"logfile": "/var/log/healthd.log"}),
    ("execute=other.cf\nexecute=third.cf", {"execute": ("other.cf", "third.cf")}),
    ("emailalert=\"a@b.c, d@e.f\"\nemailalertfreq=3600\nemailalertstatus=all\n"
     "emailalertfrom=\"LB\" <lb@test>\nsmtp=10.0.0.25\ncleanstop=no\nmaintenancedir=/tmp",
     {"emailalert": "a@b.c, d@e.f", "emailalertfreq": 3600, "emailalertstatus": ("all",),
      "emailalertfrom": "\"LB\" <lb@test>", "smtp": "10.0.0.25", "cleanstop": False,
      "maintenancedir": "/tmp"}),
]


@pytest.mark.parametrize(("text", "fields"), GLOBAL_FIELDS)
def test_global_settings(text: str, fields: dict[str, Any]) -> None:
    g = cfg(text + "\n").settings
    assert {name: getattr(g, name) for name in fields} == fields


# --- layout -----------------------------------------------------------------------------

def test_blank_lines_and_comments_inside_a_section_keep_it_open() -> None:
    c = cfg("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\n# a comment\n   # indented comment\n\n"
            "\treal=10.0.0.3:80 gate\n    scheduler=rr   # trailing comment\n")
    assert [r.address for r in c.virtuals[0].reals] == ["10.0.0.2", "10.0.0.3"]
    assert c.virtuals[0].scheduler == "rr"


def test_sections_end_at_the_next_virtual_and_globals_after_them_still_apply() -> None:
    c = cfg("virtual=10.0.0.1:80\n  real=10.0.0.2:80 gate\nvirtual=10.0.0.1:443\n  real=10.0.0.2:443 gate\n"
            "checktimeout=2\n")
    assert [v.port for v in c.virtuals] == [80, 443]
    assert all(v.reals[0].check.checktimeout == 2.0 for v in c.virtuals)


def test_crlf_line_endings_and_empty_file() -> None:
    c = cfg("virtual=10.0.0.1:80\r\n\treal=10.0.0.2:80 gate\r\n")
    assert c.virtuals[0].reals[0].address == "10.0.0.2"
    assert cfg("").virtuals == ()


def test_warnings_do_not_make_a_config_invalid() -> None:
    c = cfg("checkcount=2\nsupervised\nvirtual=10.0.0.1:80\n\treal=10.0.0.2::80 gate\n\tscheduler=rr\n"
            "\tscheduler=wlc\n\tload=\"x\"\n\treal=10.0.0.3:8080 gate\n")
    text = "\n".join(str(w) for w in c.warnings)
    for fragment in ("test.cf:1: checkcount is deprecated", "test.cf:2: a bare `supervised`",
                     "test.cf:4: '::'", "test.cf:6: scheduler is set again", "test.cf:7: load",
                     "test.cf:8: gate cannot map ports"):
        assert fragment in text


# --- ldirectord's reading of loose lines: the same value, and a warning naming the line ------------

LOOSE = [
    ("virtual=10.0.0.1:80 web\n\treal=10.0.0.2:80 gate\n", lambda c: c.virtuals[0].port == 80, "1: virtual:"),
    ("virtual=10.0.0.1\n\treal=10.0.0.2 gate\n\tservice=none\n", lambda c: c.virtuals[0].fwmark == 10,
     "1: virtual: the virtual service has no port"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tscheduler=rr    \\\\ Kommentar\n",
     lambda c: c.virtuals[0].scheduler == "rr", "3: scheduler: the text '\\\\ Kommentar'"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tservice=http web\n",
     lambda c: c.virtuals[0].service == "http", "3: service:"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\treceive=\"ok\" # or fine\n",
     lambda c: c.virtuals[0].reals[0].check.receive == "ok", ""),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\trequest=\"a.html\" please\n",
     lambda c: c.virtuals[0].reals[0].check.request == "/a.html", "3: request:"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tops=yes\n", lambda c: c.virtuals[0].ops is False,
     "3: ops=yes (one-packet scheduling) applies to UDP only"),
    ("fallbackcommand=\"\"\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n",
     lambda c: c.settings.fallbackcommand is None and c.virtuals[0].fallbackcommand is None,
     "1: fallbackcommand:"),
    ("checktimeout=5s\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n",
     lambda c: c.virtuals[0].reals[0].check.checktimeout == 5.0, "1: checktimeout:"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate junk 3\n", lambda c: c.virtuals[0].reals[0].weight == 3,
     "2: real: the text 'junk' is ignored"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\treal=10.0.0.2:80 gate 5\n",
     lambda c: [r.weight for r in c.virtuals[0].reals] == [1], "3: duplicate real server"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tscheduler=fastest\n",
     lambda c: c.virtuals[0].scheduler == "fastest", "3: scheduler: Linux has no scheduler 'fastest'"),
]


@pytest.mark.parametrize(("text", "holds", "warning"), LOOSE)
def test_loose_lines_are_read_as_ldirectord_reads_them(text: str, holds: Any, warning: str) -> None:
    c = cfg(text)
    assert holds(c)
    if warning:
        assert any(str(w).startswith(f"test.cf:{warning}") for w in c.warnings), [str(w) for w in c.warnings]


def test_messages_about_a_passwd_or_secret_line_never_show_it() -> None:
    c = cfg("virtual=10.0.0.1:1812\n\treal=10.0.0.2:1812 gate\n"
            "\tpasswd=\"hunter2\" x\n\tsecret=\u201cs3cr3t\u201d\n")
    text = "\n".join(str(w) for w in c.warnings)
    assert "test.cf:3: passwd" in text and "test.cf:4: secret" in text
    assert "hunter2" not in text and "s3cr3t" not in text
    with pytest.raises(ConfigError) as info:
        cfg("virtual=10.0.0.1:1812\n\treal=10.0.0.2:1812 gate\n\tpasswd=\"hunter2\n")
    assert "hunter2" not in str(info.value) and "test.cf:3: invalid passwd" in str(info.value)
