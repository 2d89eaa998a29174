"""What the HTTP check sends: request line, Host header, http_proxy's absolute URL."""

from __future__ import annotations

from dataclasses import replace

import pytest

from healthd.checks.http import build_request, host_header, request_target
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol

BASE = CheckSpec(type=CheckType.NEGOTIATE, service="http", protocol=ServiceProtocol.TCP, family=4,
                 address="10.0.0.2", port=80, scheme="http", request="/health?x=1")


@pytest.mark.parametrize(("kw", "host"), [
    ({}, "10.0.0.2"),
    ({"port": 8080}, "10.0.0.2:8080"),
    ({"family": 6, "address": "2001:db8::2"}, "[2001:db8::2]"),
    ({"family": 6, "address": "2001:db8::2", "port": 8443, "scheme": "https"}, "[2001:db8::2]:8443"),
    ({"scheme": "https", "port": 443}, "10.0.0.2"),
    ({"virtualhost": "www.example.org"}, "www.example.org"),
])
def test_host_header(kw: dict[str, object], host: str) -> None:
    assert host_header(replace(BASE, **kw)) == host  # type: ignore[arg-type]


def test_request_bytes() -> None:
    raw = build_request(replace(BASE, httpmethod="HEAD"))
    lines = raw.decode().split("\r\n")
    assert lines[0] == "HEAD /health?x=1 HTTP/1.1"
    assert "Host: 10.0.0.2" in lines
    assert "Connection: close" in lines
    assert raw.endswith(b"\r\n\r\n")


def test_http_proxy_sends_an_absolute_url() -> None:
    spec = replace(BASE, service="http_proxy", port=3128, request="http://www.example.org/ping")
    assert request_target(spec) == ("http://www.example.org/ping", "www.example.org")
    assert build_request(spec).startswith(b"GET http://www.example.org/ping HTTP/1.1\r\n")


def test_http_proxy_with_a_path_asks_for_the_virtualhost() -> None:
    spec = replace(BASE, service="http_proxy", port=3128, request="/ping", virtualhost="www.example.org")
    assert request_target(spec) == ("http://www.example.org/ping", "www.example.org")


def test_non_ascii_and_spaces_are_percent_encoded() -> None:
    raw = build_request(replace(BASE, request="/état de santé?q=a b&x=%41"))
    assert raw.startswith(b"GET /%C3%A9tat%20de%20sant%C3%A9?q=a%20b&x=%41 HTTP/1.1\r\n")


@pytest.mark.parametrize("kw", [{"request": "/x\r\nX-Evil: 1"}, {"virtualhost": "a\nb"}])
def test_line_breaks_cannot_inject_headers(kw: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="line break"):
        build_request(replace(BASE, **kw))  # type: ignore[arg-type]
