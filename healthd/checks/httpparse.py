"""An incremental HTTP/1.x response reader with no I/O: bytes in, status and a bounded body out.

Built for health checks, not for browsing: one response per connection (the check
sends `Connection: close`), interim 1xx responses skipped, the body kept only up to
a limit, and anything that is not HTTP reported as an error as early as possible so
that a real answering garbage fails fast instead of running into its deadline.
"""

from __future__ import annotations

import enum

HEAD_LIMIT = 32 * 1024  # a response head longer than this is treated as garbage


def whole_response(data: bytes, body_limit: int) -> tuple[int, str, bytes] | None:
    """(status, reason, body) when `data`, the first read of a GET's answer, is the usual case,
    whole: a 2xx status other than 204, CRLF header lines each with a colon, one Content-Length
    and no Transfer-Encoding or Location, and that many body bytes, at most `body_limit`.
    None for anything else: ResponseParser reads it then. In the usual case both give the same
    answer; this one does it in a few bytes methods instead of a loop over headers (a quarter of
    the parser's cost, which counts at 10,000 checks a second)."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(b"HTTP/1."):
        return None
    head = data[:end]
    if head.count(b"\n") != head.count(b"\r\n"):
        return None  # a bare LF: the parser's business
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    code = parts[1] if len(parts) > 1 else b""
    if len(code) != 3 or not code.isdigit() or code[0] != 50 or code == b"204":  # 50: "2"
        return None
    for line in lines[1:]:
        if b":" not in line:  # not a header line: the parser says how it is malformed
            return None
    low = head.lower()
    at = low.find(b"\ncontent-length:")
    if at < 0 or low.count(b"content-length") != 1 or b"transfer-encoding" in low or b"location" in low:
        return None
    at += 16
    stop = low.find(b"\r", at)
    text = head[at: stop if stop >= 0 else end].strip()
    if not text.isdigit():
        return None
    length = int(text)
    if length > body_limit or len(data) - end - 4 < length:
        return None
    reason = parts[2].decode("latin-1").strip() if len(parts) > 2 else ""
    return int(code), reason, data[end + 4: end + 4 + length]


class ParseState(enum.Enum):
    HEAD = "head"  # reading the status line and headers
    BODY = "body"  # status known, reading the body
    DONE = "done"  # body complete (or limit reached): a verdict can be made
    ERROR = "error"  # not a usable HTTP response; `error` says why


class _Framing(enum.Enum):
    NONE = 0  # no body: HEAD request, 204, 304
    LENGTH = 1  # Content-Length
    CHUNKED = 2  # Transfer-Encoding: chunked
    EOF = 3  # until the server closes


class ResponseParser:
    """Feed it what the server sends; read `state`, `status`, `body`, `truncated`, `error`.

    `head_only` is true for a HEAD request (no body follows whatever the headers say).
    At most `body_limit` body bytes are kept; reaching the limit completes the response
    with `truncated` set, so an endless body costs no more than a finite one.
    """

    __slots__ = (
        "_body_limit", "_buf", "_chunk_left", "_chunk_state", "_framing", "_head_only",
        "_length_left", "_scan_from", "body", "error", "location", "reason", "state", "status",
        "truncated",
    )

    def __init__(self, *, head_only: bool = False, body_limit: int = 64 * 1024) -> None:
        self._head_only = head_only
        self._body_limit = body_limit
        self._buf = bytearray()  # head bytes not yet parsed, then a partial chunk-size line
        self._scan_from = 0
        self._framing = _Framing.EOF
        self._length_left = 0
        self._chunk_state = "size"  # size | data | data-end | trailer
        self._chunk_left = 0
        self.state = ParseState.HEAD
        self.status = 0
        self.reason = ""
        self.location = ""  # the Location header of the final response (redirects), "" if none
        self.body = bytearray()
        self.truncated = False
        self.error = ""

    # -- input -------------------------------------------------------------------------

    def feed(self, data: bytes) -> ParseState:
        """Take the next bytes from the server; returns the new state."""
        if self.state is ParseState.HEAD:
            if not self._buf and self._fast_head(data):
                return self.state
            self._buf += data
            self._parse_head()
            if self.state is ParseState.BODY and self._buf:
                rest = bytes(self._buf)
                self._buf.clear()
                self._feed_body(rest)
        elif self.state is ParseState.BODY:
            self._feed_body(data)
        return self.state

    def feed_eof(self) -> ParseState:
        """The server closed its side; returns the final state (DONE or ERROR)."""
        if self.state is ParseState.HEAD:
            self._fail("connection closed before a complete HTTP response head"
                       if self._buf else "connection closed without a response")
        elif self.state is ParseState.BODY:
            if self._framing is _Framing.EOF:
                self.state = ParseState.DONE
            else:
                self._fail("connection closed in the middle of the response body")
        return self.state

    # -- head --------------------------------------------------------------------------

    def _fast_head(self, data: bytes) -> bool:
        """The usual case, a whole CRLF head in one read: parse it without buffering. False if not that."""
        end = data.find(b"\r\n\r\n")
        if end < 0 or not data.startswith(b"HTTP/") or data.find(b"\n\n", 0, end) >= 0:
            return False
        self._read_head(data[:end])
        rest = data[end + 4:]
        if self.state is ParseState.HEAD:  # an interim 1xx: the final response follows
            if rest:
                self.feed(rest)
        elif self.state is ParseState.BODY and rest:
            self._feed_body(rest)
        return True

    def _parse_head(self) -> None:
        while self.state is ParseState.HEAD:
            buf = self._buf
            if len(buf) >= 5 and not buf.startswith(b"HTTP/"):
                self._fail("not an HTTP response: " + _excerpt(buf))
                return
            end, sep_len = _head_end(buf, self._scan_from)
            if end < 0:
                if len(buf) > HEAD_LIMIT:
                    self._fail(f"HTTP response head longer than {HEAD_LIMIT} bytes")
                # the separator may straddle two reads: rescan its last 3 bytes next time
                self._scan_from = max(0, len(buf) - 3)
                return
            head = bytes(buf[:end])
            del buf[: end + sep_len]
            self._scan_from = 0
            self._read_head(head)

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\n")
        status_line = lines[0].rstrip(b"\r")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() \
                or len(parts[1]) != 3:
            self._fail("malformed HTTP status line: " + _excerpt(status_line))
            return
        status = int(parts[1])
        if 100 <= status < 200 and status != 101:
            return  # interim response (100 Continue, 103 Early Hints): the final one follows
        self.status = status
        self.reason = parts[2].decode("latin-1").strip() if len(parts) > 2 else ""
        length: int | None = None
        chunked = False
        for raw in lines[1:]:
            name, colon, value = raw.partition(b":")
            if not colon:
                if raw.strip():
                    self._fail("malformed HTTP header line: " + _excerpt(raw))
                    return
                continue
            key = name.strip().lower()
            if key == b"content-length":
                text = value.strip()
                if not text.isdigit():
                    self._fail("malformed Content-Length: " + _excerpt(text))
                    return
                length = int(text)
            elif key == b"transfer-encoding":
                chunked = value.strip().lower().endswith(b"chunked")
            elif key == b"location":
                self.location = value.strip().decode("latin-1")
        if self._head_only or status in (204, 304) or status == 101:
            self._framing = _Framing.NONE
            self.state = ParseState.DONE
            return
        self.state = ParseState.BODY
        if chunked:
            self._framing = _Framing.CHUNKED
        elif length is not None:
            self._framing = _Framing.LENGTH
            self._length_left = length
            if length == 0:
                self.state = ParseState.DONE
        else:
            self._framing = _Framing.EOF

    # -- body --------------------------------------------------------------------------

    def _feed_body(self, data: bytes) -> None:
        if self._framing is _Framing.LENGTH:
            take = data[: self._length_left]
            self._length_left -= len(take)
            self._keep(take)
            if self._length_left == 0:
                self.state = ParseState.DONE
        elif self._framing is _Framing.EOF:
            self._keep(data)
        else:
            self._feed_chunked(data)

    def _keep(self, data: bytes) -> None:
        room = self._body_limit - len(self.body)
        if len(data) >= room:
            self.body += data[:room]
            self.truncated = len(data) > room or self._framing is not _Framing.LENGTH \
                or self._length_left > 0
            self.state = ParseState.DONE
        else:
            self.body += data

    def _feed_chunked(self, data: bytes) -> None:
        buf = bytes(self._buf) + data if self._buf else data
        self._buf.clear()
        pos = 0
        while self.state is ParseState.BODY:
            if self._chunk_state == "data":
                take = buf[pos: pos + self._chunk_left]
                pos += len(take)
                self._chunk_left -= len(take)
                self._keep(take)
                if self._chunk_left:
                    return
                self._chunk_state = "data-end"
                continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if len(buf) - pos > 1024:
                    self._fail("malformed chunked body: line too long")
                else:
                    self._buf += buf[pos:]
                return
            line = buf[pos:nl].strip()
            pos = nl + 1
            if self._chunk_state == "size":
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    self._fail("malformed chunk size: " + _excerpt(line))
                    return
                if size == 0:
                    self._chunk_state = "trailer"
                else:
                    self._chunk_state = "data"
                    self._chunk_left = size
            elif self._chunk_state == "data-end":
                if line:
                    self._fail("malformed chunked body: data longer than its chunk size")
                    return
                self._chunk_state = "size"
            elif not line:  # an empty line ends the trailer section
                self.state = ParseState.DONE

    def _fail(self, why: str) -> None:
        self.state = ParseState.ERROR
        self.error = why


def _head_end(buf: bytes, start: int) -> tuple[int, int]:
    """Where the blank line ending the head begins, and its length; (-1, 0) if not yet there."""
    crlf = buf.find(b"\r\n\r\n", start)
    lf = buf.find(b"\n\n", start)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    if lf >= 0:
        return lf, 2
    return -1, 0


def _excerpt(data: bytes, limit: int = 40) -> str:
    """A short, printable rendering of what the server sent, for a one-line detail."""
    text = repr(bytes(data[:limit]))[2:-1]
    return text + ("..." if len(data) > limit else "")
