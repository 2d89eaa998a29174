"""Any input at all yields a Config or FILE:LINE errors, never an exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthd.config import Config, ConfigError, parse_bytes

from .conftest import fake_resolver

# Fragments of real syntax, so that random text reaches deep into the parser.
PIECES = [
    "virtual=", "virtual6=", "real=", "real6=", "\t", "    ", "\n", "\r\n", "=", ":", "->", "[", "]", '"',
    "#", " ", "gate", "masq", "ipip", "10.0.0.1", "10.0.0.2:80", "[2001:db8::1]:80", "localhost", "99",
    "checktype=", "negotiate", "connect", "external", "5", "service=", "http", "https", "none",
    "request=", "receive=", "checkport=", "fallback=", "protocol=", "udp", "fwm", "netmask=",
    "checktimeout=", "negotiatetimeout=", "l:3", "u:9", "(?i)", "\\K", "[[:alpha:]]", "\\x{41}",
    "quiescent=", "yes", "no", "scheduler=", "wrr", "persistent=", "emailalertstatus=", "\x00", "\xff",
]

structured = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


def check(data: bytes | str) -> None:
    try:
        config = parse_bytes(data, "junk.cf", fake_resolver)
    except ConfigError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.path == "junk.cf" and issue.line >= 1
            assert str(issue).startswith(f"junk.cf:{issue.line}: ")
        assert [i.line for i in exc.issues] == sorted(i.line for i in exc.issues)
        return
    assert isinstance(config, Config)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_binary_junk(data: bytes) -> None:
    check(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=500))
def test_any_text(text: str) -> None:
    check(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structured)
def test_syntax_shaped_text(text: str) -> None:
    check(text)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PIECES), st.integers(min_value=10_000, max_value=120_000))
def test_very_long_lines(piece: str, length: int) -> None:
    line = (piece * (length // max(len(piece), 1) + 1))[:length]
    check(f"virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\treceive=\"{line}\"\n{line}\n")
