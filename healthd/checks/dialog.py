"""Shared plumbing for the service checks: one deadline, stream opening, and turning failures into Outcomes.

Every service module writes its dialogue as a coroutine that either returns a
success detail or raises CheckFailed; `bounded()` runs it under the check's
deadline and maps whatever a server can cause (refusal, reset, TLS failure,
silence, garbage) to Outcome(ok=False), so a module never raises to the runner.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable

from healthd.checks import failures
from healthd.checks.context import CheckContext
from healthd.checks.spec import CheckSpec, Outcome

LINE_LIMIT = 8192  # longest protocol line accepted from a server


class CheckFailed(Exception):
    """The server answered, but not as a healthy one does; the message is the Outcome detail."""


async def bounded(spec: CheckSpec, dialogue: Callable[[], Awaitable[str]]) -> Outcome:
    """Run `dialogue` within spec.deadline; its returned string is the success detail."""
    start = time.monotonic()

    def done(ok: bool, detail: str) -> Outcome:
        return Outcome(ok=ok, detail=detail, latency=time.monotonic() - start)

    try:
        async with asyncio.timeout(spec.deadline):
            return done(True, await dialogue())
    except CheckFailed as exc:
        return done(False, str(exc))
    except TimeoutError:
        return done(False, failures.timed_out(spec.deadline))
    except asyncio.IncompleteReadError:
        return done(False, failures.CLOSED)
    except asyncio.LimitOverrunError:
        return done(False, "reply line too long")
    except ConnectionRefusedError:
        return done(False, failures.REFUSED)
    except ConnectionResetError:
        return done(False, failures.RESET)
    except ssl.SSLError as exc:
        return done(False, failures.tls_failed(exc))
    except OSError as exc:
        return done(False, failures.connection_failed(exc))
    except (ValueError, UnicodeError) as exc:
        return done(False, f"unreadable reply: {exc}")


def tls_server_name(spec: CheckSpec) -> str | None:
    """SNI to send: `virtualhost` when set; none for a bare IP (TLS forbids IP literals in SNI)."""
    return spec.virtualhost or None


async def open_stream(
    spec: CheckSpec, ctx: CheckContext, tls: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP (optionally TLS from the first byte) to the check's target."""
    if not tls:
        return await asyncio.open_connection(spec.address, spec.port, limit=LINE_LIMIT)
    return await asyncio.open_connection(
        spec.address,
        spec.port,
        ssl=ctx.tls,
        server_hostname=tls_server_name(spec) or "",
        limit=LINE_LIMIT,
    )


def close_stream(writer: asyncio.StreamWriter) -> None:
    """Close without waiting: buffered bytes (a QUIT) still go out, but a peer that never
    acknowledges cannot stretch the check past its deadline."""
    writer.close()


async def read_line(reader: asyncio.StreamReader) -> str:
    """One CRLF- or LF-terminated line without its terminator; EOF before a line is an error."""
    raw = await reader.readuntil(b"\n")
    return raw.rstrip(b"\r\n").decode("utf-8", "replace")


def strip_slash(request: str) -> str:
    """ldirectord prepends "/" to every request; services other than http use the text after it."""
    return request[1:] if request.startswith("/") else request


def excerpt(text: str, width: int = 80) -> str:
    """A server's words, shortened for a one-line detail."""
    text = text.strip().replace("\r", " ").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


MAX_REPLY_LINES = 200  # a multi-line reply longer than this is not a healthy server's


def parse_coded_line(line: str) -> tuple[int, bool, str]:
    """One line of an SMTP/FTP style reply: (code, is_last_line, text).

    "250-size" continues a reply, "250 ok" (or a bare "250") ends it.
    """
    head = line[:3]
    if len(head) < 3 or not head.isdigit() or (len(line) > 3 and line[3] not in " -"):
        raise CheckFailed(f"not a protocol reply: {excerpt(line)!r}")
    return int(head), len(line) == 3 or line[3] == " ", line[4:]


async def read_coded_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """A whole (possibly multi-line) coded reply: its code and its first line's text.

    Inside a multi-line reply only "<same code> " ends it; other lines are text
    (RFC 959 lets FTP servers put anything there).
    """
    code, last, text = parse_coded_line(await read_line(reader))
    for _ in range(MAX_REPLY_LINES):
        if last:
            return code, text
        line = await read_line(reader)
        last = line == str(code) or line.startswith(f"{code} ")
    raise CheckFailed("reply has too many lines")
