"""The pure parts of the transports: where `smtp=` points, and how DATA carries a message."""

from __future__ import annotations

import pytest

from healthd.alerts.transport import dot_stuffed, parse_server


@pytest.mark.parametrize(("value", "expected"), [
    ("mail.example.com", ("mail.example.com", 25)),
    ("192.0.2.25", ("192.0.2.25", 25)),
    ("127.0.0.1:2525", ("127.0.0.1", 2525)),
    ("[2001:db8::25]", ("2001:db8::25", 25)),
    ("[2001:db8::25]:587", ("2001:db8::25", 587)),
    ("2001:db8::25", ("2001:db8::25", 25)),
])
def test_smtp_values(value: str, expected: tuple[str, int]) -> None:
    assert parse_server(value) == expected


def test_a_bad_port_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a number"):
        parse_server("mail:smtp")


def test_dot_stuffing_and_line_ends() -> None:
    assert dot_stuffed(b"Subject: x\n\n.hidden\n..two\nend\n") == (
        b"Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n")
    assert dot_stuffed(b"a\r\nb") == b"a\r\nb\r\n"
