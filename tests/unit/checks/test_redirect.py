"""Which redirects a check follows: LWP's statuses, only to the same real (pure, no sockets)."""

from __future__ import annotations

import pytest

from healthd.checks.redirect import Hop, Refused, next_hop


def hop(location: str, *, scheme: str = "http", host: str = "www.example.com", target: str = "/a/b",
        address: str = "10.0.0.2", port: int = 80, proxy: bool = False) -> Hop | Refused:
    return next_hop(302, location, scheme=scheme, host=host, target=target, address=address, port=port,
                    proxy=proxy)


@pytest.mark.parametrize(("location", "target"), [
    ("/ok.html", "/ok.html"),
    ("ok.html", "/a/ok.html"),  # relative to the request's path, as LWP resolves it
    ("../c?x=1#frag", "/c?x=1"),
    ("http://www.example.com/login", "/login"),  # the Host the request named
    ("http://WWW.Example.COM:80/login", "/login"),
    ("http://10.0.0.2/", "/"),  # the real's own address and port
    ("//www.example.com/x", "/x"),
    ("http://www.example.com", "/"),
])
def test_followed_on_the_same_real(location: str, target: str) -> None:
    assert hop(location) == Hop(target)


@pytest.mark.parametrize(("location", "why"), [
    ("http://other.example.com/", "another host or port than this real"),
    ("http://www.example.com:8080/", "another host or port than this real"),
    ("http://10.0.0.3/", "another host or port than this real"),
    ("https://www.example.com/", "another scheme than this check's"),
    ("ftp://www.example.com/", "another scheme"),
    ("", "without a Location"),
    ("http://www.example.com:99999/", "invalid Location"),
    ("/a\r\nX-Injected: 1", "invalid Location"),
])
def test_refused(location: str, why: str) -> None:
    result = hop(location)
    assert isinstance(result, Refused) and why in result.reason, result


def test_ipv6_real_and_https_default_port() -> None:
    assert hop("https://[2001:db8::2]/x", scheme="https", host="[2001:db8::2]", address="2001:db8::2",
               port=443) == Hop("/x")
    assert isinstance(hop("https://[2001:db8::3]/x", scheme="https", host="[2001:db8::2]",
                          address="2001:db8::2", port=443), Refused)


def test_check_port_other_than_the_public_one() -> None:
    # the real listens on 8080 behind a masq virtual on 80: a Location naming the Host is the same service
    assert hop("http://www.example.com/x", port=8080) == Hop("/x")
    assert hop("http://10.0.0.2:8080/x", port=8080) == Hop("/x")
    assert isinstance(hop("http://10.0.0.2/x", port=8080, host="10.0.0.2:8080"), Refused)


def test_proxy_follows_any_http_url_through_the_same_proxy() -> None:
    base = "http://www.example.com/a"
    assert hop("/b", target=base, proxy=True) == Hop("http://www.example.com/b")
    assert hop("http://elsewhere.example/c#x", target=base, proxy=True) == Hop("http://elsewhere.example/c")
    refused = hop("https://www.example.com/", target=base, proxy=True)
    assert isinstance(refused, Refused) and "http:// only" in refused.reason
