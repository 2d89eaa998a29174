"""ldirectord's default rules, one table each, and host lookup through the system resolver."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthd.config import defaults, load
from healthd.config.lookup import resolve_port, system_resolver

SERVICE_BY_PORT = [
    (21, "ftp"), (25, "smtp"), (53, "dns"), (80, "http"), (110, "pop"), (119, "nntp"), (143, "imap"),
    (389, "ldap"), (443, "https"), (587, "submission"), (636, "ldaps"), (993, "imaps"), (995, "pops"),
    (1521, "oracle"), (1812, "radius"), (3128, "http_proxy"), (3306, "mysql"), (5060, "sip"),
    (5432, "pgsql"), (8080, "none"), (22, "none"),
]


@pytest.mark.parametrize(("port", "service"), SERVICE_BY_PORT)
def test_service_by_port(port: int, service: str) -> None:
    assert defaults.service_for_port(port) == service


@pytest.mark.parametrize(("port_text", "protocol"),
                         [("80", "tcp"), ("53", "udp"), ("domain", "udp"), ("http", "tcp"), (None, "fwm")])
def test_protocol_default(port_text: str | None, protocol: str) -> None:
    assert defaults.protocol_for(port_text) == protocol


@pytest.mark.parametrize(("explicit", "real_port", "service", "expected"),
                         [(8080, 80, "http", 8080), (None, 81, "http", 81), (None, 0, "https", 443),
                          (None, 0, "simpletcp", 0), (None, 0, "none", 0)])
def test_checkport(explicit: int | None, real_port: int, service: str, expected: int) -> None:
    assert defaults.checkport(explicit, real_port, service) == expected


@pytest.mark.parametrize(("text", "protocol", "port"),
                         [("80", "tcp", 80), ("http", "tcp", 80), ("domain", "udp", 53), ("0", "tcp", 0),
                          ("65536", "tcp", None), ("no-such-service-name", "tcp", None)])
def test_resolve_port(text: str, protocol: str, port: int | None) -> None:
    assert resolve_port(text, protocol) == port


def test_system_resolver_reads_localhost_without_dns(tmp_path: Path) -> None:
    assert system_resolver("localhost", 4) == "127.0.0.1"
    path = tmp_path / "l.cf"
    path.write_text("virtual=localhost:80\n\treal=localhost:8080 masq\n")
    v = load(str(path)).virtuals[0]
    assert (v.address, v.reals[0].address, v.reals[0].port) == ("127.0.0.1", "127.0.0.1", 8080)


def test_a_stuck_lookup_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading

    from healthd.config import lookup

    release = threading.Event()

    def stuck(*_args: object, **_kw: object) -> list[object]:
        release.wait(30)
        return []

    monkeypatch.setattr(lookup, "RESOLVE_TIMEOUT", 0.2)
    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    try:
        assert system_resolver("stuck.test", 4) is None
    finally:
        release.set()
