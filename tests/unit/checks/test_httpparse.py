"""The HTTP/1.x response reader: framing, interim responses, limits and garbage, fed in any split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthd.checks.httpparse import HEAD_LIMIT, ParseState, ResponseParser, whole_response


def parse(raw: bytes, *, eof: bool = True, **kw: object) -> ResponseParser:
    p = ResponseParser(**kw)  # type: ignore[arg-type]
    p.feed(raw)
    if eof and p.state in (ParseState.HEAD, ParseState.BODY):
        p.feed_eof()
    return p


CASES = [
    # (raw response, parser kwargs, state, status, body, truncated)
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", {}, ParseState.DONE, 200, b"hello", False),
    (b"HTTP/1.0 200 OK\r\n\r\nuntil close", {}, ParseState.DONE, 200, b"until close", False),
    (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", {}, ParseState.DONE, 503, b"", False),
    (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", {}, ParseState.DONE, 200, b"ok", False),  # bare LF
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n",
     {}, ParseState.DONE, 200, b"abcdefg", False),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-Trailer: 1\r\n\r\n",
     {}, ParseState.DONE, 200, b"ab", False),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
     {}, ParseState.DONE, 201, b"x", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", {"head_only": True},
     ParseState.DONE, 200, b"", False),
    (b"HTTP/1.1 204 No Content\r\n\r\n", {}, ParseState.DONE, 204, b"", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", {"body_limit": 4},
     ParseState.DONE, 200, b"0123", True),
    (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100, {"body_limit": 10}, ParseState.DONE, 200, b"x" * 10, True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n0123", {"body_limit": 4},
     ParseState.DONE, 200, b"0123", False),
]


@pytest.mark.parametrize(("raw", "kw", "state", "status", "body", "truncated"), CASES)
def test_well_formed_responses(raw: bytes, kw: dict[str, object], state: ParseState, status: int,
                               body: bytes, truncated: bool) -> None:
    p = parse(raw, **kw)
    assert (p.state, p.status, bytes(p.body), p.truncated) == (state, status, body, truncated)


@pytest.mark.parametrize(("raw", "why"), [
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP response"),
    (b"\x16\x03\x01\x00\xa5\x01\x00", "not an HTTP response"),
    (b"HTTP/2 200\r\n\r\n", "malformed HTTP status line"),
    (b"HTTP/1.1 OK fine\r\n\r\n", "malformed HTTP status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed HTTP header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n", "malformed Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed in the middle"),
    (b"HTTP/1.1 200 OK\r\nServer: x\r\n", "before a complete HTTP response head"),
    (b"", "without a response"),
])
def test_garbage_is_an_error_with_a_reason(raw: bytes, why: str) -> None:
    p = parse(raw)
    assert p.state is ParseState.ERROR
    assert why in p.error


def test_garbage_is_recognised_before_eof() -> None:
    p = ResponseParser()
    assert p.feed(b"<html>hello") is ParseState.ERROR


def test_endless_head_is_cut_off() -> None:
    p = ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\n")
    state = ParseState.HEAD
    for _ in range(HEAD_LIMIT // 1000 + 2):
        state = p.feed(b"X-Filler: " + b"a" * 990 + b"\r\n")
        if state is not ParseState.HEAD:
            break
    assert state is ParseState.ERROR and "longer than" in p.error


def test_endless_body_stops_at_the_limit() -> None:
    p = ResponseParser(body_limit=1000)
    p.feed(b"HTTP/1.1 200 OK\r\n\r\n")
    fed = 0
    while p.state is ParseState.BODY and fed < 10**6:
        p.feed(b"y" * 300)
        fed += 300
    assert p.state is ParseState.DONE and len(p.body) == 1000 and p.truncated


def test_status_is_known_before_the_body_arrives() -> None:
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") is ParseState.BODY
    assert p.status == 200


RESPONSES = [c[0] for c in CASES if not c[1]]


@given(st.sampled_from(RESPONSES), st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_any_split_of_the_bytes_gives_the_same_result(raw: bytes, cuts: list[int]) -> None:
    whole = parse(raw)
    p = ResponseParser()
    pos = 0
    for n in cuts:
        p.feed(raw[pos:pos + n])
        pos += n
    p.feed(raw[pos:])
    if p.state in (ParseState.HEAD, ParseState.BODY):
        p.feed_eof()
    assert (p.state, p.status, bytes(p.body)) == (whole.state, whole.status, bytes(whole.body))


# -- whole_response: the one-read shortcut must never disagree with the parser ----------------

NGINX = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 07:50:27 GMT\r\n"
         b"Content-Type: text/html\r\nContent-Length: 18\r\nConnection: close\r\n\r\nhealthd bench: ok\n")


def _agrees(raw: bytes, limit: int = 64 * 1024) -> tuple[int, str, bytes] | None:
    """whole_response(raw), after checking it says what the parser says whenever it says anything."""
    whole = whole_response(raw, limit)
    if whole is not None:
        p = parse(raw, eof=False, body_limit=limit)
        assert p.state is ParseState.DONE and not p.truncated, raw
        assert whole == (p.status, p.reason, bytes(p.body)), raw
    return whole


def test_whole_response_reads_the_usual_answer() -> None:
    assert _agrees(NGINX) == (200, "OK", b"healthd bench: ok\n")
    assert _agrees(NGINX + b"trailing bytes") == (200, "OK", b"healthd bench: ok\n")
    lower = NGINX.replace(b"Content-Length: 18", b"content-length:18 ")
    assert _agrees(lower) == (200, "OK", b"healthd bench: ok\n")
    assert _agrees(b"HTTP/1.0 204x No Content\r\nContent-Length: 0\r\n\r\n") is None


@pytest.mark.parametrize("raw", [
    NGINX[:-1],  # body incomplete: more reads to come
    NGINX[:60],  # head incomplete
    NGINX.replace(b"200 OK", b"404 Not Found"),  # not 2xx: the parser's
    NGINX.replace(b"200 OK", b"204 No Content"),
    NGINX.replace(b"Content-Length: 18\r\n", b""),  # read to EOF
    NGINX.replace(b"Content-Length: 18", b"Content-Length: 18\r\nContent-Length: 18"),
    NGINX.replace(b"Content-Length: 18", b"Transfer-Encoding: chunked"),
    NGINX.replace(b"Content-Length: 18", b"Content-Length: 18\r\n Content-Length: 5"),
    NGINX.replace(b"Content-Length: 18", b"Content-Length: +18"),
    NGINX.replace(b"Server: nginx/1.22.1", b"Server nginx"),  # a malformed header line: the parser fails it
    NGINX.replace(b"\r\nDate", b"\nDate"),  # a bare LF
    NGINX.replace(b"Server: nginx/1.22.1", b"Location: /elsewhere"),
    NGINX.replace(b"HTTP/1.1", b"HTTP/2"),
    b"garbage\r\n\r\n",
])
def test_whole_response_leaves_everything_else_to_the_parser(raw: bytes) -> None:
    assert _agrees(raw) is None


def test_whole_response_leaves_a_body_over_the_limit_to_the_parser() -> None:
    assert _agrees(NGINX, limit=17) is None
    assert _agrees(NGINX, limit=18) is not None


@given(st.lists(st.sampled_from([
    b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 201 Created\r\n", b"HTTP/1.1 200\r\n", b"Content-Length: 3\r\n",
    b"content-length: 2\r\n", b"Content-Length: x\r\n", b"Transfer-Encoding: chunked\r\n", b"X-A: b\r\n",
    b"X-A\r\n", b" X: y\r\n", b"\r\n", b"\n", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"HTTP/1.1 100 Continue\r\n",
]), max_size=8))
def test_whole_response_never_disagrees_with_the_parser(pieces: list[bytes]) -> None:
    _agrees(b"".join(pieces))
