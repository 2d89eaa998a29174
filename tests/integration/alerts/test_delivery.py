"""Alert mails delivered by a real MTA (exim) both ways ldirectord sends them; hostile servers slow nothing.

SMTP: healthd talks to exim listening on loopback (`smtp=127.0.0.1:PORT`).
Local MTA: healthd pipes the message into exim run as `sendmail -t -oi` would.
Either way the test reads exim's maildir: subject, body, From, and the envelope
(Envelope-to, Return-path) exim recorded. Then servers that accept and never
answer, drip a byte at a time, or flood: each mail to them fails at its deadline
(or sooner), the event loop never stalls, and mails to a good server keep going.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from healthd.alerts import message
from healthd.alerts.outbox import Outbox
from healthd.alerts.transport import SendmailTransport, SmtpTransport, Transport
from healthd.config import parse_text
from tests.integration.alerts.mta import Exim
from tests.integration.services.servers import workdir

pytestmark = pytest.mark.root  # exim switches to its own user: only root may start it

CONFIG = """\
emailalert="ops@example.com, oncall@example.net"
emailalertfrom="LB Alerts" <lb@example.com>
virtual=192.0.2.1:80
\treal=192.0.2.11:80 masq 2
\tservice=http
\tservicename=shop
\tcomment=front web servers
\tlogin=admin
\tpasswd=hunter2
"""


@pytest.fixture
def exim() -> Iterator[Exim]:
    with workdir("alerts-exim") as wd:
        mta = Exim(wd)
        yield mta
        mta.stop()


def alert(subject_of=message.real_removed):
    config = parse_text(CONFIG, "alerts.cf")
    web = config.virtuals[0]
    subject = subject_of(web, web.reals[0], False)
    return message.compose(web, subject, "running", emailalert=web.emailalert or "",
                           emailalertfrom=config.settings.emailalertfrom, hostname="director1",
                           mask=lambda text: text.replace("hunter2", "****"))


def check_delivered(exim: Exim, envelope_sender: str = "lb@example.com") -> None:
    (got,) = exim.wait_for(1)
    assert got.subject == "[shop] Deleted real server: 192.0.2.11:80 (192.0.2.1:80)"
    assert got.envelope_to == {"ops@example.com", "oncall@example.net"}
    assert got.return_path == envelope_sender
    (sender,) = got.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("LB Alerts", "lb@example.com")
    assert got.body == (
        "ldirectord host: director1\n"
        "Log-Message: [shop] Deleted real server: 192.0.2.11:80 (192.0.2.1:80)\n"
        "Daemon-Status: running\n\n"
        "Service name: shop\nComment: front web servers\n\n"
    )
    assert "hunter2" not in got.message.as_string()


async def test_smtp_delivery_to_a_real_server(exim: Exim) -> None:
    exim.serve()
    await SmtpTransport(exim.server, helo="director1").send(alert())
    check_delivered(exim)


async def test_local_mta_delivery_as_sendmail_t(exim: Exim) -> None:
    await SendmailTransport(exim.sendmail_argv()).send(alert())
    # as with Mail::Send, the MTA sets the envelope sender: the calling user
    check_delivered(exim, envelope_sender="root@healthd.test")


# ---- hostile servers --------------------------------------------------------------


@contextlib.contextmanager
def hostile(kind: str) -> Iterator[int]:
    """A misbehaving SMTP server in its own process (tests/integration/alerts/hostile_smtp.py); its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.alerts.hostile_smtp", kind],
        stdout=subprocess.PIPE, cwd=Path(__file__).parents[3],
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


async def wait_for(condition: Callable[[], bool], limit: float) -> float:
    """Seconds until `condition()` held (polled every 10 ms); fails after `limit`."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        while True:
            if condition():
                return time.monotonic() - started
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("kind", ["silent", "dripping", "flooding"])
async def test_a_hostile_server_costs_one_deadline_and_slows_nothing(exim: Exim, kind: str) -> None:
    """Judged by what the loop did, not by wall-clock lateness (the machine's load is not under test):
    the good server's mail goes while the hostile one still holds its own, the hostile one ends at
    its deadline (or sooner), and the loop's thread spends little CPU on it all."""
    exim.serve()
    with hostile(kind) as port:
        bad = f"127.0.0.1:{port}"

        def transport_for(server: str | None) -> Transport:
            assert server is not None
            return SmtpTransport(server, helo="director1")

        outbox = Outbox(transport_for, deadline=5.0, pause=30.0)
        cpu = time.thread_time()
        assert outbox.submit(bad, alert())
        assert outbox.submit(exim.server, alert())  # another lane: not behind the hostile one
        good = outbox.stats()[f"smtp server 127.0.0.1:{exim.port}"]
        bad_lane = outbox.stats()[f"smtp server 127.0.0.1:{port}"]
        await wait_for(lambda: good.sent + good.failed > 0, 5.0)
        assert good.sent == 1
        if kind != "flooding":  # a flood is refused at once; the others hold on until the deadline
            assert bad_lane.failed == 0
        took = await wait_for(lambda: bad_lane.failed > 0, 7.0)
        assert bad_lane.sent == 0 and took < 6.0
        # the failed lane pauses: the next mail for it is dropped at once, not queued for a deadline
        assert not outbox.submit(bad, alert())
        assert bad_lane.dropped == 1
        await outbox.close(0.5)
        spent = time.thread_time() - cpu
    assert spent < 0.5, f"the event loop's thread spent {spent:.3f} s of CPU"
    check_delivered(exim)
