"""Servers that flood instead of answering: every stream-based service check fails fast and bounded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from healthd.checks import ftp, mail, sip
from healthd.checks.context import CheckContext
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for


@pytest.fixture
def flood_port() -> Iterator[int]:
    with servers.flooding_tcp() as port:
        yield port


@pytest.mark.parametrize(
    ("module", "service", "extra"),
    [
        (mail, "smtp", {}),
        (mail, "pop", {}),
        (mail, "imap", {}),
        (mail, "nntp", {}),
        (ftp, "ftp", {}),
        (sip, "sip", {"protocol": "tcp"}),
    ],
    ids=["smtp", "pop", "imap", "nntp", "ftp", "sip"],
)
async def test_endless_line_fails_without_reading_it_all(flood_port: int, ctx: CheckContext, module: object,
                                                         service: str, extra: dict[str, str]) -> None:
    spec = spec_for(service, flood_port, negotiatetimeout=5.0, **extra)
    out = await module.check(spec, ctx)  # type: ignore[attr-defined]
    assert not out.ok, out
    # Refused as soon as the line outgrows the limit, not at the deadline.
    assert out.detail == "reply line too long", out.detail
    assert out.latency < 4.0, out
