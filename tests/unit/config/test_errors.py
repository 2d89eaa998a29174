"""Invalid files: every problem is reported, each as FILE:LINE with a message quoting the text."""

from __future__ import annotations

import pytest

from healthd.checks import services

from .conftest import problems

V = "virtual=10.0.0.1:80\n"
R = "\treal=10.0.0.2:80 gate\n"

# (text, line, fragments the message must contain)
ERRORS = [
    # obsolete and unknown directives
    ("connecttimeout=3\n", 1, ["connecttimeout is obsolete", "negotiatetimeout", '"connecttimeout=3"']),
    ("timeout=3\n", 1, ["timeout is obsolete"]),
    (V + R + "\tconnecttimeout=3\n", 3, ["connecttimeout is obsolete"]),
    ("frobnicate=1\n", 1, ["unknown directive 'frobnicate'"]),
    ("Checktimeout=1\n", 1, ["unknown directive", "lowercase: checktimeout"]),
    (V + R + "\tbogus=1\n", 3, ["unknown directive 'bogus' in a virtual section"]),
    ("this is not a directive\n", 1, ["expected `directive = value`", '"this is not a directive"']),
    # virtual=
    ("virtual=192.168.1.1\n", 1, ["no port", "192.168.1.1:PORT", "firewall mark"]),
    ("virtual=[2001:db8::1]:80\n", 1, ["virtual6="]),
    ("virtual6=[2001:db8::1]\n", 1, ["no port"]),
    ("virtual6=2001:db8::1:80\n", 1, ["in brackets"]),
    ("virtual6=10.0.0.1:80\n", 1, ["expected [IPv6-address]:port"]),
    ("virtual=0\n", 1, ["firewall mark is a number between 1 and 4294967295"]),
    ("virtual=99999999999\n", 1, ["firewall mark"]),
    ("virtual=10.0.0.1:99999\n" + R, 1, ["unknown port or service name '99999'"]),
    ("virtual=10.0.0.1:nosuchservice\n" + R, 1, ["unknown port or service name 'nosuchservice'"]),
    ("virtual=nosuchhost.invalid:80\n" + R, 1, ["cannot resolve 'nosuchhost.invalid'"]),
    ("virtual=\n", 1, ["invalid virtual"]),
    (V + R + V + R, 3, ["duplicate virtual service 10.0.0.1:80 tcp", "first defined on line 1"]),
    ("virtual=7\n\treal=10.0.0.2 gate\n\tservice=none\nvirtual=7\n\treal=10.0.0.2 gate\n", 4,
     ["duplicate virtual service fwmark 7"]),
    # layout
    ("\treal=10.0.0.2:80 gate\n", 1, ["comes before any virtual= line"]),
    (V + R + "quiescent=no\n\treal=10.0.0.3:80 gate\n", 4, ["not inside a virtual section",
                                                           "ended at the unindented line 3"]),
    ("real=10.0.0.2:80 gate\n", 1, ["belongs inside a virtual section"]),
    (V + R + "\tautoreload=yes\n", 3, ["global directive", "column 0"]),
    (V + R + "\tvirtual=10.0.0.9:80\n", 3, ["must start in column 0"]),
    # real=
    (V + "\treal=10.0.0.2:80\n", 2, ["forwarding method is missing"]),
    (V + "\treal=10.0.0.2:80 route\n", 2, ["unknown forwarding method 'route'", '"real=10.0.0.2:80 route"']),
    (V + "\treal=10.0.0.2:80 gate 70000\n", 2, ["weight must be between 0 and 65535"]),
    (V + "\treal=10.0.0.2:80 gate 1 junk\n", 2, ["unexpected text 'junk'"]),
    (V + "\treal=10.0.0.2:80 gate 1 \"only-request\"\n", 2, ['quoted pair "request", "receive"']),
    (V + "\treal=10.0.0.2:80 gate l:10 u:5\n", 2, ["lower threshold l:10 is above the upper threshold u:5"]),
    (V + "\treal=10.0.0.9->10.0.0.2:80 gate\n", 2, ["runs backwards"]),
    (V + "\treal=10.0.0.0->10.1.0.0:80 gate\n", 2, ["at most 4096"]),
    (V + "\treal=nosuchhost.invalid:80 gate\n", 2, ["cannot resolve 'nosuchhost.invalid'"]),
    (V + "\treal=10.0.0.2:nosuchport gate\n", 2, ["unknown port or service name 'nosuchport'"]),
    (V + "\treal=[2001:db8::2]:80 gate\n", 2, ["real6= inside a virtual6= section"]),
    (V + "\treal6=[2001:db8::2]:80 gate\n", 2, ["real6= cannot be used in a virtual= section",
                                                "use real="]),
    ("virtual6=[2001:db8::1]:80\n\treal=10.0.0.2:80 gate\n", 2, ["use real6="]),
    ("virtual6=[2001:db8::1]:80\n\treal6=[2001:db8::2]->[2001:db8::5]:80 gate\n", 2, ["IPv4 only"]),
    ("virtual6=[2001:db8::1]:80\n\treal6=2001:db8::2 gate\n", 2, ["expected [IPv6-address]"]),
    (V + "\treal=2001:db8::2 gate\n", 2, ["expected host[->host][:port]"]),
    ("virtual=10.0.0.1:80\n\treal=v6.test:80 gate\n", 2, ["cannot resolve 'v6.test' to an IPv4 address"]),
    (V + R + R, 3, ["duplicate real server 10.0.0.2:80", "also on line 2"]),
    (V + "\treal=10.0.0.2:80 gate 1 \"/\", \"(?{1})\"\n", 2, ["embedded Perl code"]),
    # fwmark reals need a port for port-based checks
    ("virtual=5\n\treal=10.0.0.2 gate\n\tchecktype=connect\n", 2, ["has no port", "checkport=N"]),
    ("virtual=5\n\treal=10.0.0.2 gate\n\tservice=simpletcp\n", 2, ["service=simpletcp", "checkport=N"]),
    # values
    ("checktimeout=0\n", 1, ["positive number of seconds"]),
    ("checktimeout=abc\n", 1, ["positive number of seconds"]),
    ("negotiatetimeout=-1\n", 1, ["positive number"]),
    ("checkinterval=\n", 1, ["positive number"]),
    ("failurecount=0\n", 1, ["positive whole number"]),
    ("checkcount=x\n", 1, ["positive whole number"]),
    ("autoreload=true\n", 1, ["expected yes or no"]),
    ("quiescent\n", 1, ["quiescent needs a value"]),
    ("supervised=maybe\n", 1, ["expected yes or no"]),
    ("logfile=\"var/log/x\"\n", 1, ["absolute path or a syslog facility"]),
    ("callback=\"/bin/cb\n", 1, ["closing double quote is missing"]),
    ("emailalertstatus=all,bogus\n", 1, ["unknown alert status 'bogus'"]),
    ("emailalertstatus=none,starting\n", 1, ['"none" cannot be combined']),
    ("emailalertfreq=often\n", 1, ["whole number"]),
    ("smtp=bad host\n", 1, ["SMTP server"]),
    ("fallback=127.0.0.1:80 route\n", 1, ["unknown forwarding method 'route'"]),
    ("fallback=[::1]:80\n", 1, ["fallback6= form"]),
    ("fallback6=127.0.0.1:80\n", 1, ["[IPv6-address]:port"]),
    (V + R + "\tfallback6=[::1]:80\n", 3, ["fallback6= cannot be used in a virtual= section"]),
    (V + R + "\tchecktype=sometimes\n", 3, ["expected connect, negotiate"]),
    (V + R + "\tcheckport=0\n", 3, ["port number between 1 and 65535"]),
    (V + R + "\tcheckport=70000\n", 3, ["port number between 1 and 65535"]),
    (V + R + "\tservice=gopher\n", 3, ["unknown service: expected one of"]),
    (V + R + "\thttpmethod=POST\n", 3, ["expected GET or HEAD"]),
    (V + R + "\tscheduler=WRR\n", 3, ["lowercase letters"]),
    (V + R + "\tpersistent=forever\n", 3, ["whole number"]),
    (V + R + "\tnetmask=64\n", 3, ["dotted IPv4 netmask"]),
    (V + R + "\tnetmask=255.0.255.0\n", 3, ["dotted IPv4 netmask"]),
    ("virtual6=[2001:db8::1]:80\n\treal6=[2001:db8::2]:80 gate\n\tnetmask=255.255.255.0\n", 3,
     ["prefix length between 1 and 128"]),
    (V + R + "\tprotocol=sctp\n", 3, ["expected tcp, udp or fwm"]),
    (V + R + "\tprotocol=fwm\n", 3, ["protocol=fwm needs a firewall-mark virtual"]),
    ("virtual=5\n\treal=10.0.0.2 gate\n\tprotocol=tcp\n", 3, ["needs protocol=fwm"]),
    (V + R + "\tops=yes\n", 3, ["ops=yes", "needs protocol=udp"]),
    (V + R + "\tops=maybe\n", 3, ["expected yes or no"]),
    (V + R + "\trequest=\"\"\n", 3, ["the value is empty"]),
    (V + R + "\treceive=\"\"\n", 3, ["the value is empty"]),
    (V + R + "\treceive=\"a\\Kb\"\n", 3, [r"\K (keep left)", "Perl regex that Python cannot use"]),
    (V + R + "\treceive=\"(unclosed\"\n", 3, ["not a valid regular expression"]),
    (V + R + "\treceive=\"x\" trailing\n", 3, ["unexpected text after the closing quote"]),
    (V + R + "\tvirtualhost=\"bad host\"\n", 3, ["expected a host name"]),
    (V + R + "\tschedflags=Flag!\n", 3, ["scheduler flags"]),
    ("virtual=10.0.0.1:3128\n\treal=10.0.0.2:3128 gate\n", 2,
     ["http_proxy needs an absolute request URL"]),
    (V + "\treal=10.0.0.2:80 gate 1 \"http://nosuchhost.invalid/\", \"x\"\n", 2,
     ["cannot resolve 'nosuchhost.invalid'", "check URL's host"]),
]


@pytest.mark.parametrize(("text", "line", "fragments"), ERRORS)
def test_error_messages(text: str, line: int, fragments: list[str]) -> None:
    found = [p for p in problems(text) if p.startswith(f"{line}: ")]
    assert found, f"no error on line {line}: {problems(text)}"
    assert any(all(f in p for f in fragments) for p in found), found


def test_every_malformed_line_is_reported_in_line_order() -> None:
    text = ("checktimeout=zero\n"           # 1
            "timeout=3\n"                   # 2
            "virtual=10.0.0.1\n"            # 3
            "\treal=10.0.0.2:80 gate\n"     # 4 (inside the broken section: still checked)
            "virtual=10.0.0.1:80\n"         # 5
            "\treal=10.0.0.2:80 tunnel\n"   # 6
            "\tchecktype=sometimes\n"       # 7
            "\n"
            "\treceive=\"\\p{L}\"\n"        # 9
            "quiescent=perhaps\n"           # 10
            "\tscheduler=rr\n")             # 11
    lines = [int(p.split(":")[0]) for p in problems(text)]
    assert lines == [1, 2, 3, 6, 7, 9, 10, 11]


def test_unsupported_service_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "SUPPORTED_SERVICES", frozenset({"none", "http"}))
    found = problems(V + R + "\tservice=https\n")
    assert found == ['3: service=https is not supported yet: "service=https"']
    found = problems("virtual=10.0.0.1:443\n" + "\treal=10.0.0.2:443 gate\n")
    assert len(found) == 1
    assert "service=https (ldirectord's default for port 443) is not supported yet" in found[0]


def test_unsupported_service_is_fine_when_it_is_not_negotiated(monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import cfg

    monkeypatch.setattr(services, "SUPPORTED_SERVICES", frozenset({"none"}))
    c = cfg("virtual=10.0.0.1:25\n\treal=10.0.0.2:25 gate\n\tchecktype=connect\n")
    assert c.virtuals[0].service == "smtp" and c.virtuals[0].reals[0].check.service == "none"


def test_messages_name_the_file(tmp_path: object) -> None:
    from pathlib import Path

    from healthd.config import ConfigError, load

    path = Path(str(tmp_path)) / "bad.cf"
    path.write_text("virtual=10.0.0.1\n")
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert str(info.value).startswith(f"{path}:1: invalid virtual")


def test_unreadable_file_is_a_config_error(tmp_path: object) -> None:
    from healthd.config import ConfigError, load

    with pytest.raises(ConfigError) as info:
        load(f"{tmp_path}/missing.cf")
    assert "cannot read the file" in str(info.value)


def test_long_and_binary_lines_are_quoted_short_and_printable() -> None:
    found = problems("x" * 5000 + " y\n" + "bad\x01line here\n")
    assert len(found[0]) < 200 and "…" in found[0]
    assert "\\x01" in found[1]


def test_non_utf8_is_reported_but_allowed_in_comments() -> None:
    from healthd.config import ConfigError, parse_bytes

    from .conftest import fake_resolver

    ok = parse_bytes(b"# caf\xe9\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n", "t.cf", fake_resolver)
    assert len(ok.virtuals) == 1
    with pytest.raises(ConfigError) as info:
        parse_bytes(b"virtual=10.0.0.1:80\n\tcomment=caf\xe9\n", "t.cf", fake_resolver)
    assert str(info.value) == "t.cf:2: this line is not valid UTF-8 text"
