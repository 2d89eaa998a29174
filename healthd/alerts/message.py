"""The text of ldirectord's alert mails: subjects for each table event, the body, the headers.

Subjects and body fields keep ldirectord's exact words ("Deleted real server: ...",
"Log-Message:", "Daemon-Status:") because operators filter and parse them; only
the headers ldirectord leaves to the MTA (Date, Message-ID) are added here.
Nothing here does I/O. The message is written out by hand: the email package's
header objects cost milliseconds per mail, which a burst of failures would spend
on the event loop. Headers stay on one line, as ldirectord sends them.
"""

from __future__ import annotations

import email.header
import email.utils
import functools
import getpass
import quopri
import socket
from collections.abc import Callable
from dataclasses import dataclass

from healthd.config.model import Fallback, Real, Virtual
from healthd.vocab import host_port


def virtual_text(virtual: Virtual) -> str:
    """ldirectord's name for a virtual in mails: `192.0.2.1:80`, `[2001:db8::1]:80`, or a bare fwmark `99`."""
    if virtual.fwmark is not None:
        return str(virtual.fwmark)
    return virtual.label


def fallback_text(virtual: Virtual, fallback: Fallback) -> str:
    """The fallback server as ldirectord names it: a fallback without a port serves on the virtual's."""
    return host_port(fallback.address, fallback.port or virtual.port)


def real_removed(virtual: Virtual, real: Real, quiescent: bool) -> str:
    if quiescent:
        return f"Quiescent real server: {real.label} ({virtual_text(virtual)}) (Weight set to 0)"
    return f"Deleted real server: {real.label} ({virtual_text(virtual)})"


def real_added(virtual: Virtual, real: Real, restored: bool) -> str:
    verb = "Restored" if restored else "Added"
    return f"{verb} real server: {real.label} ({virtual_text(virtual)}) (Weight set to {real.weight})"


def fallback_changed(virtual: Virtual, fallback: Fallback, active: bool) -> str:
    where = f"{fallback_text(virtual, fallback)} ({virtual_text(virtual)})"
    if active:
        return f"Added fallback server: {where} (Weight set to {fallback.weight})"
    return f"Deleted fallback server: {where}"


def purged(virtual: Virtual, real_label: str, tag: str) -> str:
    """A real taken out as healthd stops (tag "stop") or a reload dropped it (tag "start", as ldirectord)."""
    return f"Purged real server ({tag}): {real_label} ({virtual_text(virtual)})"


def inaccessible(virtual: Virtual, real: Real) -> str:
    """The repeat sent every `emailalertfreq` seconds while a real stays down."""
    return f"Inaccessible real server: {real.label} ({virtual_text(virtual)})"


@functools.lru_cache(maxsize=256)  # config values: parsed once, not once per mail
def recipients(emailalert: str) -> tuple[str, ...]:
    """`emailalert="a@example.com, b@example.com"`: each address on its own (ldirectord's SMTP path
    sends the whole list as one malformed RCPT)."""
    return tuple(addr for _name, addr in email.utils.getaddresses([emailalert]) if addr)


@functools.lru_cache(maxsize=16)
def local_sender(hostname: str) -> str:
    """ldirectord's default sender: the daemon's user at the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "root"
    return f"{user}@{hostname}"


@dataclass(frozen=True, slots=True)
class Mail:
    """One alert, ready for a transport: envelope and the RFC 5322 message."""

    subject: str  # as logged (servicename prefix included)
    sender: str  # envelope sender
    recipients: tuple[str, ...]
    message: bytes


def compose(
    virtual: Virtual, subject: str, phase: str, *, emailalert: str, emailalertfrom: str | None,
    hostname: str, mask: Callable[[str], str] | None = None,
) -> Mail:
    """ldirectord's mail for `subject`: [servicename] prefix, host, Log-Message, Daemon-Status, details.

    `mask` removes configured secrets from every text that reaches the mail.
    """
    hide = mask or (lambda text: text)
    if virtual.servicename:
        subject = f"[{virtual.servicename}] {subject}"
    body = f"ldirectord host: {hostname}\nLog-Message: {subject}\nDaemon-Status: {phase}\n"
    details = ""
    if virtual.servicename:
        details += f"Service name: {virtual.servicename}\n"
    if virtual.comment:
        details += f"Comment: {virtual.comment}\n"
    if details:
        body += f"\n{details}\n"
    sender_header = emailalertfrom or local_sender(hostname)
    envelope = _envelope(sender_header, hostname)
    subject = hide(subject)
    headers = [
        ("From", hide(sender_header)),
        ("To", emailalert),
        ("Subject", subject),
        ("Date", email.utils.formatdate(localtime=True)),
        ("Message-ID", email.utils.make_msgid(domain=hostname or "localhost")),
        ("X-Mailer", "healthd"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="utf-8"'),
    ]
    text = hide(body)
    if text.isascii():
        headers.append(("Content-Transfer-Encoding", "7bit"))
        payload = text.encode()
    else:
        headers.append(("Content-Transfer-Encoding", "quoted-printable"))
        payload = quopri.encodestring(text.encode())
    head = "".join(f"{name}: {_header_value(value)}\n" for name, value in headers)
    return Mail(subject, envelope, recipients(emailalert), head.encode() + b"\n" + payload)


@functools.lru_cache(maxsize=64)
def _envelope(sender_header: str, hostname: str) -> str:
    """The envelope sender: the address in emailalertfrom (or ldirectord's user@host)."""
    return email.utils.parseaddr(sender_header)[1] or local_sender(hostname)


def _header_value(value: str) -> str:
    """One header line's value: as written when ASCII, else RFC 2047 encoded words; never a line break."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    return email.header.Header(value, "utf-8").encode()


def hostname() -> str:
    """The host name ldirectord puts in its mails (gethostname, no DNS lookup)."""
    return socket.gethostname()
