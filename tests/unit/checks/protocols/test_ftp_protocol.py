"""Table tests for the ftp check's reply parsing (no sockets)."""

from __future__ import annotations

import pytest

from healthd.checks import ftp
from healthd.checks.dialog import CheckFailed
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("Entering Passive Mode (127,0,0,1,195,80).", 195 * 256 + 80),
        ("Entering Passive Mode 10,0,0,5,4,1", 1025),
    ],
)
def test_pasv_port(text: str, port: int) -> None:
    assert ftp.pasv_port(text) == port


@pytest.mark.parametrize("text", ["Entering Passive Mode", "(127,0,0,1,300,1)", "(127,0,0,1,0,0)"])
def test_pasv_port_rejects(text: str) -> None:
    with pytest.raises(CheckFailed):
        ftp.pasv_port(text)


@pytest.mark.parametrize(
    ("text", "port"),
    [("Entering Extended Passive Mode (|||50000|)", 50000), ("ok (!!!21!)", 21)],
)
def test_epsv_port(text: str, port: int) -> None:
    assert ftp.epsv_port(text) == port


@pytest.mark.parametrize("text", ["Entering Extended Passive Mode", "(|||0|)", "(|||70000|)", "(||1|)"])
def test_epsv_port_rejects(text: str) -> None:
    with pytest.raises(CheckFailed):
        ftp.epsv_port(text)


def _spec(login: str, passwd: str) -> CheckSpec:
    return CheckSpec(type=CheckType.NEGOTIATE, service="ftp", protocol=ServiceProtocol.TCP, family=4,
                     address="127.0.0.1", port=21, login=login, passwd=passwd)


@pytest.mark.parametrize(
    ("login", "passwd", "sent"),
    [("", "", ("anonymous", "healthd@")), ("", "me@example", ("anonymous", "me@example")),
     ("bob", "pw", ("bob", "pw"))],
)
def test_credentials(login: str, passwd: str, sent: tuple[str, str]) -> None:
    assert ftp.credentials(_spec(login, passwd)) == sent


@pytest.mark.parametrize(
    ("content", "receive_re", "ok"),
    [(b"all good", "good", True), (b"all good", None, True), (b"down", "good", False),
     (b"\xff\xfe good", "good", True), (b"x", "(", False)],
)
def test_content_matches(content: bytes, receive_re: str | None, ok: bool) -> None:
    assert ftp.content_matches(content, receive_re) is ok
