"""How an alert mail leaves the host: to the `smtp` server (SMTP, port 25 unless given) or to the local MTA.

ldirectord uses Net::SMTP when `smtp` is set and Mail::Send (`sendmail -t`) otherwise;
healthd does the same with aiosmtplib and /usr/sbin/sendmail. Neither transport has
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

import aiosmtplib

from healthd.alerts.message import Mail

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
    """One SMTP conversation per mail, as ldirectord's Net::SMTP: no TLS, no authentication."""

    def __init__(self, server: str, helo: str) -> None:
        self.host, self.port = parse_server(server)
        self.helo = helo  # given, so that aiosmtplib never asks DNS for our FQDN inside the event loop
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.name = f"smtp server {shown}:{self.port}"

    async def send(self, mail: Mail) -> None:
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, local_hostname=self.helo,
            use_tls=False, start_tls=False, timeout=None,
        )
        try:
            await client.connect()
            refused, _ = await client.sendmail(mail.sender, list(mail.recipients), mail.message)
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"{self.name} refused every recipient: {_refusals(exc.recipients)}") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(f"{self.name} answered {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendError(f"{self.name}: {exc}") from None
        finally:
            client.close()
        if refused:
            raise SendError(f"{self.name} refused some recipients: "
                            + ", ".join(f"{a} ({r.code} {r.message})" for a, r in refused.items()))


def _refusals(errors: Sequence[object]) -> str:
    return ", ".join(str(e) for e in errors) or "no reason given"


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
