"""How an alert mail leaves the host: to the `smtp` server (SMTP, port 25 unless given) or to the local MTA.

ldirectord uses Net::SMTP when `smtp` is set and Mail::Send (`sendmail -t`) otherwise;
healthd does the same with its own small SMTP client and /usr/sbin/sendmail. Neither transport has
a deadline of its own: the outbox bounds every send, and each transport makes sure
that a cancelled send leaves no socket or process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from typing import Protocol

from healthd.alerts.message import Mail
from healthd.checks.dialog import LINE_LIMIT, CheckFailed, excerpt, read_coded_reply
from healthd.vocab import host_port

SMTP_PORT = 25
SENDMAIL = ("/usr/sbin/sendmail", "-t", "-oi")  # -t: recipients from To:, -oi: a lone "." is text
OUTPUT_LIMIT = 2000  # bytes of an MTA's complaint kept for the log


class SendError(Exception):
    """The mail was not accepted; the message says by whom and why."""


class Transport(Protocol):
    name: str  # for log lines: "smtp server mail.example.com:25" or "sendmail"

    async def send(self, mail: Mail) -> None: ...


def parse_server(value: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; port 25 unless given."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, ""
    if port and not port.isdigit():
        raise ValueError(f"smtp={value}: the port is not a number")
    return host, int(port) if port else SMTP_PORT


class SmtpTransport:
    """One SMTP conversation per mail, as ldirectord's Net::SMTP: no TLS, no authentication.

    Written on asyncio streams with the reply reader of the smtp check, so a server's
    lines and replies are bounded (8 KiB a line, 200 lines a reply) whatever it sends.
    """

    def __init__(self, server: str, helo: str) -> None:
        self.host, self.port = parse_server(server)
        self.helo = helo  # given: looking up our own FQDN would be a blocking DNS call
        self.name = f"smtp server {host_port(self.host, self.port)}"

    async def send(self, mail: Mail) -> None:
        for address in (mail.sender, *mail.recipients):
            if any(c in address for c in "\r\n<> "):
                raise SendError(f"refusing to send to or from {address!r}: not a plain address")
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=LINE_LIMIT)
        except OSError as exc:
            raise SendError(f"{self.name}: cannot connect: {exc.strerror or exc}") from None
        try:
            await self._dialogue(reader, writer, mail)
        except (CheckFailed, ValueError) as exc:
            raise SendError(f"{self.name}: {exc}") from None
        except asyncio.IncompleteReadError:
            raise SendError(f"{self.name} closed the connection") from None
        except asyncio.LimitOverrunError:
            raise SendError(f"{self.name} sent a line longer than {LINE_LIMIT} bytes") from None
        except OSError as exc:
            raise SendError(f"{self.name}: {exc.strerror or exc}") from None
        finally:
            writer.close()

    async def _dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mail: Mail) -> None:
        async def command(line: str | None, expected: tuple[int, ...], what: str) -> int:
            if line is not None:
                writer.write(line.encode() + b"\r\n")
                await writer.drain()
            code, text = await read_coded_reply(reader)
            if code not in expected:
                raise SendError(f"{self.name} answered {what} with {code} {excerpt(text)}")
            return code

        await command(None, (220,), "the connection")
        if await command(f"EHLO {self.helo}", (250, 500, 501, 502), "EHLO") != 250:
            await command(f"HELO {self.helo}", (250,), "HELO")  # a server from before ESMTP
        await command(f"MAIL FROM:<{mail.sender}>", (250,), "MAIL FROM")
        refused = []
        for rcpt in mail.recipients:
            writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
            await writer.drain()
            code, text = await read_coded_reply(reader)
            if code not in (250, 251):
                refused.append(f"{rcpt} ({code} {excerpt(text)})")
        if len(refused) == len(mail.recipients):
            raise SendError(f"{self.name} refused every recipient: {', '.join(refused)}")
        await command("DATA", (354,), "DATA")
        writer.write(dot_stuffed(mail.message) + b".\r\n")
        await command(None, (250,), "the message")
        writer.write(b"QUIT\r\n")  # its answer is not awaited: the mail is accepted
        await writer.drain()
        if refused:
            raise SendError(f"{self.name} accepted the mail but refused {', '.join(refused)}")


def dot_stuffed(message: bytes) -> bytes:
    """The message as DATA carries it: CRLF line ends, a "." doubled at the start of a line."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


class SendmailTransport:
    """The local MTA, as Mail::Send drives it: the whole message on stdin of `sendmail -t`."""

    def __init__(self, argv: Sequence[str] = SENDMAIL) -> None:
        self.argv = tuple(argv)
        self.name = os.path.basename(self.argv[0])

    async def send(self, mail: Mail) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            raise SendError(f"cannot run {self.argv[0]}: {exc.strerror or exc}") from None
        try:
            out, _ = await proc.communicate(mail.message)
        finally:
            if proc.returncode is None:  # cancelled at the deadline: the MTA and its children go
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc.returncode != 0:
            said = out[:OUTPUT_LIMIT].decode(errors="replace").strip()
            status = f"{self.argv[0]} exited with status {proc.returncode}"
            raise SendError(f"{status}: {said}" if said else status)
