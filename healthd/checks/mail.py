"""Negotiate checks for the mail and news services: smtp, submission, pop, pops, imap, imaps, nntp.

What counts as up follows ldirectord: an SMTP server greets and accepts EHLO
(HELO as a fallback); a POP3 or IMAP server greets and, when `login` is set,
accepts that login; an NNTP server greets with a 2xx code. pops and imaps speak
TLS from the first byte, with `virtualhost` as SNI when set.
"""

from __future__ import annotations

import asyncio

from healthd.checks.context import CheckContext
from healthd.checks.dialog import (
    CheckFailed,
    bounded,
    close_stream,
    excerpt,
    open_stream,
    read_coded_reply,
    read_line,
)
from healthd.checks.spec import CheckSpec, Outcome

MAX_UNTAGGED = 200  # IMAP untagged lines tolerated before the tagged answer

# ---- pure protocol logic -------------------------------------------------


def pop_ok(line: str) -> bool:
    """POP3: a positive status line."""
    return line.startswith("+OK")


def imap_greeting_ok(line: str) -> bool:
    """IMAP: a greeting that lets a client go on (OK, or PREAUTH which is already logged in)."""
    parts = line.split(" ", 2)
    return len(parts) >= 2 and parts[0] == "*" and parts[1].upper() in ("OK", "PREAUTH")


def imap_quote(value: str) -> str:
    """An IMAP quoted string; values a quoted string cannot carry are refused, not mangled."""
    if any(c in value for c in "\r\n\0") or not value.isascii():
        raise CheckFailed("login or passwd cannot be sent as an IMAP quoted string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap_tagged_status(line: str, tag: str) -> str | None:
    """The status (OK, NO, BAD) of the reply tagged `tag`, or None for any other line."""
    parts = line.split(" ", 2)
    if len(parts) >= 2 and parts[0] == tag:
        return parts[1].upper()
    return None


def nntp_greeting_ok(greeting: str) -> bool:
    """NNTP: 200 (posting allowed) or 201 (no posting); ldirectord accepts any 2xx."""
    return greeting.startswith("2")


def ehlo_name(spec: CheckSpec) -> str:
    """The name healthd gives itself in EHLO: virtualhost when set, as for HTTP's Host."""
    return spec.virtualhost or "localhost"


# ---- dialogues -----------------------------------------------------------


async def _smtp(spec: CheckSpec, ctx: CheckContext) -> str:
    reader, writer = await open_stream(spec, ctx)
    try:
        code, text = await read_coded_reply(reader)
        if code != 220:
            raise CheckFailed(f"SMTP greeting {code} {excerpt(text)}")
        writer.write(f"EHLO {ehlo_name(spec)}\r\n".encode())
        code, text = await read_coded_reply(reader)
        if code != 250:
            # Old servers answer EHLO with 500/502: HELO is the fallback, as every client does.
            writer.write(f"HELO {ehlo_name(spec)}\r\n".encode())
            code, text = await read_coded_reply(reader)
            if code != 250:
                raise CheckFailed(f"SMTP HELO refused: {code} {excerpt(text)}")
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return f"SMTP greeting and EHLO accepted ({code})"
    finally:
        close_stream(writer)


async def _pop(spec: CheckSpec, ctx: CheckContext, tls: bool) -> str:
    reader, writer = await open_stream(spec, ctx, tls=tls)
    try:
        greeting = await read_line(reader)
        if not pop_ok(greeting):
            raise CheckFailed(f"POP3 greeting: {excerpt(greeting)}")
        detail = "POP3 greeting +OK"
        if spec.login:
            for command, what in ((f"USER {spec.login}", "USER"), (f"PASS {spec.passwd}", "login")):
                if any(c in command for c in "\r\n"):
                    raise CheckFailed("login or passwd contains a line break")
                writer.write(command.encode() + b"\r\n")
                reply = await read_line(reader)
                if not pop_ok(reply):
                    raise CheckFailed(f"POP3 {what} refused: {excerpt(reply)}")
            detail = "POP3 login accepted"
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return detail
    finally:
        close_stream(writer)


async def _imap_command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: str, command: str
) -> tuple[str, str]:
    writer.write(f"{tag} {command}\r\n".encode())
    for _ in range(MAX_UNTAGGED):
        line = await read_line(reader)
        status = imap_tagged_status(line, tag)
        if status is not None:
            return status, line
    raise CheckFailed("IMAP server sent too many lines without answering")


async def _imap(spec: CheckSpec, ctx: CheckContext, tls: bool) -> str:
    reader, writer = await open_stream(spec, ctx, tls=tls)
    try:
        greeting = await read_line(reader)
        if not imap_greeting_ok(greeting):
            raise CheckFailed(f"IMAP greeting: {excerpt(greeting)}")
        detail = "IMAP greeting OK"
        if spec.login:
            status, line = await _imap_command(
                reader, writer, "h1", f"LOGIN {imap_quote(spec.login)} {imap_quote(spec.passwd)}"
            )
            if status != "OK":
                raise CheckFailed(f"IMAP login refused: {excerpt(line)}")
            detail = "IMAP login accepted"
        writer.write(b"h2 LOGOUT\r\n")
        await writer.drain()
        return detail
    finally:
        close_stream(writer)


async def _nntp(spec: CheckSpec, ctx: CheckContext) -> str:
    reader, writer = await open_stream(spec, ctx)
    try:
        greeting = await read_line(reader)
        if not nntp_greeting_ok(greeting):
            raise CheckFailed(f"NNTP greeting: {excerpt(greeting)}")
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return f"NNTP greeting {greeting[:3]}"
    finally:
        close_stream(writer)


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    """Negotiate check for the mail/news services; never raises for a server's behaviour."""
    service = spec.service
    if service in ("smtp", "submission"):
        return await bounded(spec, lambda: _smtp(spec, ctx))
    if service in ("pop", "pops"):
        return await bounded(spec, lambda: _pop(spec, ctx, tls=service == "pops"))
    if service in ("imap", "imaps"):
        return await bounded(spec, lambda: _imap(spec, ctx, tls=service == "imaps"))
    if service == "nntp":
        return await bounded(spec, lambda: _nntp(spec, ctx))
    raise ValueError(f"healthd.checks.mail does not check service {service!r}")
