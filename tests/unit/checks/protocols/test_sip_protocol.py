"""Table tests for the sip check's request and reply handling (no sockets)."""

from __future__ import annotations

import pytest

from healthd.checks import sip
from healthd.checks.dialog import CheckFailed
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol


def _spec(login: str = "", family: int = 4, address: str = "192.0.2.5") -> CheckSpec:
    return CheckSpec(type=CheckType.NEGOTIATE, service="sip", protocol=ServiceProtocol.UDP, family=family,
                     address=address, port=5060, login=login)


@pytest.mark.parametrize(
    ("spec", "uri"),
    [
        (_spec("ping@example.com"), "sip:ping@example.com"),
        (_spec("sip:ping@example.com"), "sip:ping@example.com"),
        (_spec(""), "sip:192.0.2.5:5060"),
        (_spec("", 6, "2001:db8::5"), "sip:[2001:db8::5]:5060"),
    ],
)
def test_request_uri(spec: CheckSpec, uri: str) -> None:
    assert sip.request_uri(spec) == uri


def test_build_options_is_a_complete_request() -> None:
    raw = sip.build_options("sip:a@b", "UDP", "127.0.0.1:5999", "cid", "br", "tg").decode()
    assert raw.startswith("OPTIONS sip:a@b SIP/2.0\r\n")
    assert "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKbr;rport\r\n" in raw
    assert "Call-ID: cid\r\n" in raw and "CSeq: 1 OPTIONS\r\n" in raw
    assert raw.endswith("Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize(
    ("message", "code", "reason", "call_id"),
    [
        (b"SIP/2.0 200 OK\r\nCall-ID: abc\r\nContent-Length: 0\r\n\r\n", 200, "OK", "abc"),
        (b"SIP/2.0 200 Fine thanks\r\ni: compact\r\n\r\n", 200, "Fine thanks", "compact"),
        (b"SIP/2.0 100 Trying\r\nCall-ID: x\r\n\r\n", 100, "Trying", "x"),
        (b"SIP/2.0 486\r\n\r\n", 486, "", None),
    ],
)
def test_parse_response(message: bytes, code: int, reason: str, call_id: str | None) -> None:
    got_code, got_reason, headers = sip.parse_response(message)
    assert (got_code, got_reason, headers.get("call-id")) == (code, reason, call_id)


@pytest.mark.parametrize(
    "message", [b"HTTP/1.1 200 OK\r\n\r\n", b"OPTIONS sip:x SIP/2.0\r\n\r\n", b"SIP/2.0 2000 OK\r\n", b""]
)
def test_parse_response_rejects_non_replies(message: bytes) -> None:
    with pytest.raises(CheckFailed):
        sip.parse_response(message)


@pytest.mark.parametrize(("code", "ok"), [(200, True), (202, False), (486, False), (503, False)])
def test_judge(code: int, ok: bool) -> None:
    if ok:
        assert "200" in sip.judge(code, "OK")
    else:
        with pytest.raises(CheckFailed):
            sip.judge(code, "whatever")
