"""Split ldirectord.cf text into statements: `name = value` lines with their number and indentation.

Comments and blank lines disappear here. Unlike ldirectord, a `#` inside double
quotes is kept (a receive regex or a URL may contain one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Applied to a stripped line, so a greedy value has no trailing blanks to give back
# (a lazy value followed by \s* would backtrack quadratically on long lines).
_STATEMENT = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)\s*(?:=\s*(.*))?")


@dataclass(frozen=True, slots=True)
class Statement:
    """One meaningful line: `name = value` (value None for a bare word like `supervised`)."""

    line: int
    indented: bool
    name: str
    value: str | None
    text: str  # the line as written, without the comment, for error messages
    note: str | None = None  # something about how the line was read, for a warning


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a statement at all."""

    line: int
    text: str
    reason: str


def strip_comment(text: str) -> str:
    """Cut at the first `#` that is outside double quotes."""
    hash_at = text.find("#")
    if hash_at < 0:
        return text
    quote_at = text.find('"', 0, hash_at)
    if quote_at < 0:  # no quote before the first `#`: it starts the comment (most lines end here)
        return text[:hash_at]
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return text[:i]
    return text


def quote(text: str, limit: int = 80) -> str:
    """The offending text as a message shows it: printable, bounded in length."""
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    printable = "".join(ch if ch.isprintable() or ch == "\t" else repr(ch)[1:-1] for ch in shown)
    return f'"{printable}"'


NOT_UTF8 = ("this line is not valid UTF-8 text: read as Latin-1 (ldirectord reads bytes); "
            "save the file as UTF-8")


def split_lines(data: bytes | str) -> list[tuple[int, str | None]]:
    """(number, text) per line; text is None for a line that is not UTF-8 (see latin1_lines)."""
    raw = data.splitlines() if isinstance(data, bytes) else None
    if raw is None:
        assert isinstance(data, str)
        return [(n, t) for n, t in enumerate(re.split(r"\r?\n|\r", data), start=1)]
    out: list[tuple[int, str | None]] = []
    for n, chunk in enumerate(raw, start=1):
        try:
            out.append((n, chunk.decode("utf-8")))
        except UnicodeDecodeError:
            text = chunk.decode("utf-8", errors="replace")
            # Non-UTF-8 bytes in a comment or blank line harm nobody.
            out.append((n, text if text.strip() == "" or text.lstrip().startswith("#") else None))
    return out


def latin1_lines(data: bytes | str) -> dict[int, str]:
    """The lines that are not UTF-8, read as Latin-1 (every byte is a character there)."""
    if isinstance(data, str):
        return {}
    return {n: chunk.decode("latin-1") for n, chunk in enumerate(data.splitlines(), start=1)}


def lex(lines: list[tuple[int, str | None]],
        latin1: dict[int, str] | None = None) -> list[Statement | BadLine]:
    result: list[Statement | BadLine] = []
    for number, text in lines:
        note = None
        if text is None and latin1 is not None and number in latin1:
            text, note = latin1[number], NOT_UTF8
        if text is None:
            result.append(BadLine(number, "", "this line is not valid UTF-8 text"))
            continue
        body = strip_comment(text).rstrip()
        if not body.strip():
            continue
        if "\x00" in body:
            result.append(BadLine(number, body, "this line contains a NUL byte"))
            continue
        indented = body[0] in " \t"
        stripped = body.strip()
        m = _STATEMENT.fullmatch(stripped)
        if m is None:
            result.append(BadLine(number, stripped, "expected `directive = value`"))
            continue
        result.append(Statement(number, indented, m.group(1), m.group(2), stripped, note))
    return result
