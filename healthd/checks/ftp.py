"""Negotiate check for service=ftp: log in, fetch `request` in passive mode, match its content to `receive`.

Anonymous login unless `login` is set, as in ldirectord. The file is fetched by
its path from the server's root, as ldirectord does: it prepends "/" to every
`request`, so request="welcome.msg" is `RETR /welcome.msg`, whatever the login
directory. Unlike ldirectord
(which ignores FTP errors and then matches an empty `receive` against nothing,
so a dead server with no `receive` counts as up), every step must succeed.
The data connection goes to the real's own address whatever PASV announces,
so a server behind NAT works and a hostile one cannot point healthd elsewhere.
"""

from __future__ import annotations

import asyncio
import re

from healthd.checks.context import CheckContext
from healthd.checks.dialog import (
    CheckFailed,
    bounded,
    close_stream,
    excerpt,
    open_stream,
    read_coded_reply,
)
from healthd.checks.spec import CheckSpec, Outcome

ANONYMOUS_PASSWORD = "healthd@"

# ---- pure protocol logic -------------------------------------------------

_PASV = re.compile(r"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")
_EPSV = re.compile(r"\((.)\1\1(\d{1,5})\1\)")


def pasv_port(text: str) -> int:
    """The data port from a 227 reply's h1,h2,h3,h4,p1,p2 (its address is not used)."""
    match = _PASV.search(text)
    if not match:
        raise CheckFailed(f"unreadable PASV reply: {excerpt(text)}")
    p1, p2 = int(match.group(5)), int(match.group(6))
    if p1 > 255 or p2 > 255 or (p1 == 0 and p2 == 0):
        raise CheckFailed(f"bad PASV port in: {excerpt(text)}")
    return p1 * 256 + p2


def epsv_port(text: str) -> int:
    """The data port from a 229 reply's "(|||port|)"."""
    match = _EPSV.search(text)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise CheckFailed(f"unreadable EPSV reply: {excerpt(text)}")
    return int(match.group(2))


def credentials(spec: CheckSpec) -> tuple[str, str]:
    """USER and PASS to send: the configured login, else anonymous."""
    if spec.login:
        return spec.login, spec.passwd
    return "anonymous", spec.passwd or ANONYMOUS_PASSWORD


def retr_path(request: str) -> str:
    """The path sent in RETR: ldirectord's request, always absolute ("welcome.msg" -> "/welcome.msg")."""
    return request if request.startswith("/") else "/" + request


def content_matches(content: bytes, receive_re: str | None) -> bool:
    if receive_re is None:
        return True
    try:
        return re.search(receive_re, content.decode("utf-8", "replace")) is not None
    except re.error:
        return False


# ---- the exchange --------------------------------------------------------


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str
) -> tuple[int, str]:
    if any(c in line for c in "\r\n"):
        raise CheckFailed("an FTP command argument contains a line break")
    writer.write(line.encode() + b"\r\n")
    return await read_coded_reply(reader)


async def _login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: CheckSpec) -> None:
    user, password = credentials(spec)
    code, text = await _command(reader, writer, f"USER {user}")
    if code == 331:
        code, text = await _command(reader, writer, f"PASS {password}")
    if code != 230:
        raise CheckFailed(f"FTP login as {user} refused: {code} {excerpt(text)}")


async def _data_port(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    code, text = await _command(reader, writer, "EPSV")
    if code == 229:
        return epsv_port(text)
    code, text = await _command(reader, writer, "PASV")
    if code != 227:
        raise CheckFailed(f"FTP passive mode refused: {code} {excerpt(text)}")
    return pasv_port(text)


async def _ftp(spec: CheckSpec, ctx: CheckContext) -> str:
    reader, writer = await open_stream(spec, ctx)
    try:
        code, text = await read_coded_reply(reader)
        if code != 220:
            raise CheckFailed(f"FTP greeting {code} {excerpt(text)}")
        await _login(reader, writer, spec)
        code, text = await _command(reader, writer, "TYPE I")
        if code != 200:
            raise CheckFailed(f"FTP TYPE I refused: {code} {excerpt(text)}")
        port = await _data_port(reader, writer)
        data_reader, data_writer = await asyncio.open_connection(spec.address, port)
        try:
            path = retr_path(spec.request)
            code, text = await _command(reader, writer, f"RETR {path}")
            if code not in (125, 150):
                raise CheckFailed(f"FTP RETR {path} refused: {code} {excerpt(text)}")
            # Only the first body_limit bytes are matched: enough for a health file.
            content = b""
            while len(content) < ctx.body_limit:
                chunk = await data_reader.read(ctx.body_limit - len(content))
                if not chunk:
                    break
                content += chunk
        finally:
            close_stream(data_writer)
        if len(content) < ctx.body_limit:
            code, text = await read_coded_reply(reader)
            if code not in (226, 250):
                raise CheckFailed(f"FTP transfer of {path} failed: {code} {excerpt(text)}")
        writer.write(b"QUIT\r\n")
        await writer.drain()
        if not content_matches(content, spec.receive_re):
            raise CheckFailed(f"FTP {path}: content does not match receive")
        return f"FTP {path} fetched ({len(content)} bytes), content matched"
    finally:
        close_stream(writer)


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    """Negotiate check for service=ftp; never raises for a server's behaviour."""
    return await bounded(spec, lambda: _ftp(spec, ctx))
