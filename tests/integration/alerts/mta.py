"""A real MTA for the alert tests: exim, private to the test, accepting every mail into a maildir.

The same configuration serves as an SMTP server on loopback (`exim -bd`) and as
the local MTA (`exim -C CONF -t`, what `sendmail -t` is on Debian), so both of
ldirectord's ways of sending are received by a real mail server and read back
from its maildir with the envelope it recorded.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import textwrap
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from tests.integration.services.servers import Daemon, chown, free_port, launch, tcp_ready

HOST = "127.0.0.1"


@dataclass
class Received:
    """One delivered mail: its headers and body, and the envelope exim recorded."""

    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def envelope_to(self) -> set[str]:
        return {a.strip() for a in str(self.message["Envelope-to"]).split(",")}

    @property
    def return_path(self) -> str:
        return str(self.message["Return-path"]).strip("<>")

    @property
    def body(self) -> str:
        return str(self.message.get_content())


class Exim:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.conf = workdir / "exim.conf"
        self.maildir = workdir / "maildir"
        self.binary = shutil.which("exim4") or shutil.which("exim") or "exim4"
        self.daemon: Daemon | None = None
        self.port = 0
        for sub in ("spool", "log"):
            (workdir / sub).mkdir()
        self.maildir.mkdir()
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir()
        chown(workdir / "spool", "Debian-exim")
        chown(workdir / "log", "Debian-exim")
        chown(self.maildir, "Debian-exim")
        self.conf.write_text(textwrap.dedent(f"""\
            primary_hostname = mail.healthd.test
            qualify_domain = healthd.test
            spool_directory = {workdir}/spool
            log_file_path = {workdir}/log/%slog
            keep_environment =
            tls_advertise_hosts =
            local_interfaces = <; {HOST}
            acl_smtp_rcpt = accept_all
            rfc1413_query_timeout = 0s
            host_lookup =
            begin acl
            accept_all:
              accept
            begin routers
            everyone:
              driver = accept
              transport = into_maildir
            begin transports
            into_maildir:
              driver = appendfile
              directory = {self.maildir}
              maildir_format
              user = Debian-exim
              envelope_to_add
              return_path_add
              batch_max = 100
            """))

    def serve(self) -> Exim:
        """Listen for SMTP on a free loopback port."""
        self.port = free_port()
        self.daemon = launch(
            "exim (alerts)",
            [self.binary, "-C", str(self.conf), "-bdf", "-oX", str(self.port),
             "-oP", str(self.workdir / "pid")],
            self.workdir, tcp_ready(self.port),
        )
        return self

    @property
    def server(self) -> str:
        """The `smtp=` value that reaches it."""
        return f"{HOST}:{self.port}"

    def sendmail_argv(self) -> list[str]:
        """exim as the local MTA, as /usr/sbin/sendmail -t -oi runs it, with this private configuration;
        -odi delivers before returning, so that the test reads a settled maildir."""
        return [self.binary, "-C", str(self.conf), "-odi", "-t", "-oi"]

    def received(self) -> list[Received]:
        """Every delivered mail, in delivery order (the maildir files' modification times)."""
        files = [p for sub in ("new", "cur") for p in (self.maildir / sub).iterdir() if p.is_file()]
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        parsed = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]
        return [Received(m) for m in parsed if isinstance(m, EmailMessage)]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.received()
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
