"""Table tests for the dns check's question choice and answer matching (no sockets)."""

from __future__ import annotations

import dns.message
import pytest

from healthd.checks import dns as dns_check
from healthd.checks.dialog import CheckFailed


@pytest.mark.parametrize(
    ("request_", "receive", "question"),
    [
        ("/www.example.com", "192.0.2.1", ("www.example.com", ["A"])),
        ("www.example.com", "2001:db8::1", ("www.example.com", ["AAAA"])),
        ("www.example.com", "", ("www.example.com", ["A", "AAAA"])),
        ("www.example.com", r"192\..*", ("www.example.com", ["A", "AAAA"])),
        ("/192.0.2.1", "www.example.com", ("1.2.0.192.in-addr.arpa.", ["PTR"])),
        ("2001:db8::1", "host.example", (
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", ["PTR"])),
    ],
)
def test_question_for(request_: str, receive: str, question: tuple[str, list[str]]) -> None:
    assert dns_check.question_for(request_, receive) == question


@pytest.mark.parametrize("request_", ["/", "", "  "])
def test_question_needs_a_name(request_: str) -> None:
    with pytest.raises(CheckFailed):
        dns_check.question_for(request_, "192.0.2.1")


@pytest.mark.parametrize(
    ("kind", "text", "receive", "receive_re", "ok"),
    [
        ("A", "192.0.2.1", "192.0.2.1", r"192\.0\.2\.1", True),
        ("A", "192.0.2.1", "192.0.2.10", None, False),
        ("A", "192.0.2.10", "192.0.2.1", r"192.0.2.1", False),  # regex must match the whole answer
        ("A", "192.0.2.10", r"192\.0\.2\.\d+", r"192\.0\.2\.\d+", True),
        ("AAAA", "2001:db8::1", "2001:DB8:0::1", None, True),
        ("PTR", "www.example.com", "WWW.example.com.", None, True),
        ("PTR", "www.example.com", "mail.example.com", None, False),
        ("A", "192.0.2.1", "", None, True),
        ("A", "192.0.2.1", "(", "(", False),  # a broken regex matches nothing, never raises
    ],
)
def test_answer_matches(kind: str, text: str, receive: str, receive_re: str | None, ok: bool) -> None:
    assert dns_check.answer_matches(kind, text, receive, receive_re) is ok


def test_answer_texts_keeps_address_and_name_records_only() -> None:
    response = dns.message.from_text(
        "id 1\nopcode QUERY\nrcode NOERROR\nflags QR AA RD\n;QUESTION\nwww.example. IN A\n;ANSWER\n"
        "www.example. 60 IN CNAME web.example.\nweb.example. 60 IN A 192.0.2.7\n"
        "web.example. 60 IN A 192.0.2.8\n7.2.0.192.in-addr.arpa. 60 IN PTR web.example.\n"
    )
    assert dns_check.answer_texts(response) == [
        ("A", "192.0.2.7"), ("A", "192.0.2.8"), ("PTR", "web.example"),
    ]
