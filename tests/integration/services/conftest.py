"""Fixtures for the service-check tests: real servers, one per module, and a spec builder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from healthd.checks import tls
from healthd.checks.context import CheckContext
from healthd.checks.spec import CheckSpec, CheckType
from tests.integration.services import servers


def spec_for(service: str, port: int, **kw: object) -> CheckSpec:
    """A negotiate CheckSpec for `service` on 127.0.0.1:port; the deadline defaults to 5 s.

    A TLS service gets the policy the config layer would give it with `tlscafile=` the
    test CA and no other tls* directive (ldirectord's verification, that CA trusted).
    """
    fields: dict[str, object] = {
        "type": CheckType.NEGOTIATE, "service": service, "protocol": "tcp", "family": 4,
        "address": servers.HOST, "port": port, "checktimeout": 5.0, "negotiatetimeout": 5.0,
    }
    fields.update(kw)
    if service in tls.TLS_SERVICES and "tls" not in kw:
        fields["tls"] = tls.resolve(service, str(fields["address"]), kw.get("virtualhost"),  # type: ignore[arg-type]
                                    cafile=servers.ca_file())
    return CheckSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def ctx() -> CheckContext:
    return CheckContext()


@pytest.fixture
def silent_tcp_port() -> Iterator[int]:
    with servers.silent_tcp() as port:
        yield port


@pytest.fixture
def silent_udp_port() -> Iterator[int]:
    with servers.silent_udp() as port:
        yield port


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if servers.STARTUP:
        terminalreporter.section("service fixtures: start-up seconds")
        for name, seconds in servers.STARTUP.items():
            terminalreporter.write_line(f"{name:32s} {seconds:6.2f}")
