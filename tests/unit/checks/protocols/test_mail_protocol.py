"""Table tests for the mail/news protocol logic (no sockets)."""

from __future__ import annotations

import pytest

from healthd.checks import mail
from healthd.checks.dialog import CheckFailed, parse_coded_line, strip_slash


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("220 mail.example ESMTP", (220, True, "mail.example ESMTP")),
        ("250-SIZE 1000", (250, False, "SIZE 1000")),
        ("250", (250, True, "")),
        ("421 4.3.2 shutting down", (421, True, "4.3.2 shutting down")),
    ],
)
def test_coded_line(line: str, expected: tuple[int, bool, str]) -> None:
    assert parse_coded_line(line) == expected


@pytest.mark.parametrize("line", ["", "+OK ready", "* OK imap", "22 short", "220x", "abc def"])
def test_coded_line_rejects_non_replies(line: str) -> None:
    with pytest.raises(CheckFailed):
        parse_coded_line(line)


@pytest.mark.parametrize(
    ("line", "ok"),
    [("+OK Dovecot ready.", True), ("+OK", True), ("-ERR go away", False), ("* OK IMAP", False), ("", False)],
)
def test_pop_ok(line: str, ok: bool) -> None:
    assert mail.pop_ok(line) is ok


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("* OK [CAPABILITY IMAP4rev1] Dovecot ready.", True),
        ("* PREAUTH logged in as alice", True),
        ("* ok lowercase is fine", True),
        ("* BYE too many connections", False),
        ("+OK pop3", False),
        ("220 smtp", False),
        ("*", False),
    ],
)
def test_imap_greeting(line: str, ok: bool) -> None:
    assert mail.imap_greeting_ok(line) is ok


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("h1 OK Logged in", "OK"),
        ("h1 NO [AUTHENTICATIONFAILED] Authentication failed.", "NO"),
        ("h1 bad syntax", "BAD"),
        ("* CAPABILITY IMAP4rev1", None),
        ("h10 OK other tag", None),
    ],
)
def test_imap_tagged_status(line: str, status: str | None) -> None:
    assert mail.imap_tagged_status(line, "h1") == status


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("alice", '"alice"'), ('a"b', '"a\\"b"'), ("back\\slash", '"back\\\\slash"'), ("", '""')],
)
def test_imap_quote(value: str, quoted: str) -> None:
    assert mail.imap_quote(value) == quoted


@pytest.mark.parametrize("value", ["two\r\nlines", "nul\0", "ünïcode"])
def test_imap_quote_refuses_unsendable(value: str) -> None:
    with pytest.raises(CheckFailed):
        mail.imap_quote(value)


@pytest.mark.parametrize(
    ("greeting", "ok"),
    [("200 news ready", True), ("201 no posting", True), ("400 busy", False),
     ("502 denied", False), ("", False)],
)
def test_nntp_greeting(greeting: str, ok: bool) -> None:
    assert mail.nntp_greeting_ok(greeting) is ok


@pytest.mark.parametrize(
    ("request_", "text"), [("/", ""), ("/www.example", "www.example"), ("plain", "plain")]
)
def test_strip_slash(request_: str, text: str) -> None:
    assert strip_slash(request_) == text
