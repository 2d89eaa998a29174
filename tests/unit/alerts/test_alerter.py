"""Which table events make which mails, for whom, in which daemon phase, and how often they repeat.

The transport here records what it is given (the unit under test is the alerter's
logic); real delivery through SMTP and sendmail is tested in tests/integration/alerts.
"""

from __future__ import annotations

import asyncio
import email
import email.policy

from healthd.alerts.alerter import Alerter, Phase
from healthd.alerts.message import Mail
from healthd.alerts.outbox import Outbox
from healthd.config import parse_text

CONFIG = """\
emailalert=ops@example.com
emailalertfreq={freq}
emailalertstatus={status}
{extra}
virtual=192.0.2.1:80
\treal=192.0.2.11:80 masq 2
\treal=192.0.2.12:80 masq 2
\tservice=http
\tquiescent={quiescent}
virtual=192.0.2.2:80
\treal=192.0.2.21:80 masq
\tservice=http
\temailalert=web2@example.com
\tsmtp=mail.example.com
virtual=192.0.2.3:80
\treal=192.0.2.31:80 masq
\tservice=http
\temailalertstatus=none
"""


class Recorder:
    def __init__(self, name: str, sent: list[tuple[str, Mail]]) -> None:
        self.name = name
        self.sent = sent

    async def send(self, mail: Mail) -> None:
        self.sent.append((self.name, mail))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(freq: int = 0, status: str = "all", quiescent: str = "no", extra: str = ""):
    config = parse_text(CONFIG.format(freq=freq, status=status, quiescent=quiescent, extra=extra), "a.cf")
    sent: list[tuple[str, Mail]] = []
    clock = Clock()
    outbox = Outbox(lambda server: Recorder(server or "sendmail", sent), clock=clock)
    alerter = Alerter(config, outbox, hostname="director1", clock=clock, tick=0.01)
    return config, alerter, sent, clock


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def subjects(sent: list[tuple[str, Mail]]) -> list[str]:
    return [m.subject for _, m in sent]


def phase_of(mail: Mail) -> str:
    body = email.message_from_bytes(mail.message, policy=email.policy.default).get_content()
    return next(line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("Daemon-Status"))


async def test_first_verdicts_give_one_mail_each_in_the_starting_phase() -> None:
    config, alerter, sent, _ = make()
    web = config.virtuals[0]
    alerter.verdict(web, web.reals[0], True)
    alerter.verdict(web, web.reals[1], False)
    await settle()
    assert subjects(sent) == [
        "Added real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 2)",
        "Deleted real server: 192.0.2.12:80 (192.0.2.1:80)",
    ]
    assert [phase_of(m) for _, m in sent] == ["starting", "starting"]
    assert [m.recipients for _, m in sent] == [("ops@example.com",)] * 2
    assert {lane for lane, _ in sent} == {"sendmail"}  # no smtp=: the local MTA


async def test_quiescent_reals_are_quiesced_and_restored() -> None:
    config, alerter, sent, _ = make(quiescent="yes")
    web = config.virtuals[0]
    alerter.set_phase(Phase.RUNNING)
    alerter.verdict(web, web.reals[0], True)
    alerter.verdict(web, web.reals[0], False)
    alerter.verdict(web, web.reals[0], True)
    await settle()
    assert subjects(sent) == [
        "Added real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 2)",
        "Quiescent real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 0)",
        "Restored real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 2)",
    ]


async def test_the_virtuals_own_settings_win() -> None:
    config, alerter, sent, _ = make()
    _web, web2, silent = config.virtuals
    alerter.verdict(web2, web2.reals[0], False)
    alerter.verdict(silent, silent.reals[0], False)  # emailalertstatus=none in its section
    await settle()
    assert len(sent) == 1
    lane, mail = sent[0]
    assert (lane, mail.recipients) == ("mail.example.com", ("web2@example.com",))


async def test_emailalertstatus_filters_on_the_daemon_phase() -> None:
    config, alerter, sent, _ = make(status="running,stopping")
    web = config.virtuals[0]
    alerter.verdict(web, web.reals[0], True)  # starting: filtered
    alerter.set_phase(Phase.RUNNING)
    alerter.verdict(web, web.reals[0], False)
    alerter.set_phase(Phase.RELOADING)
    alerter.verdict(web, web.reals[0], True)  # reloading: filtered
    alerter.set_phase(Phase.RUNNING)
    alerter.stopping()
    await settle()
    assert subjects(sent) == [
        "Deleted real server: 192.0.2.11:80 (192.0.2.1:80)",
        "Purged real server (stop): 192.0.2.11:80 (192.0.2.1:80)",
    ]
    assert phase_of(sent[1][1]) == "stopping"


async def test_a_down_real_is_reported_again_every_emailalertfreq_seconds() -> None:
    config, alerter, sent, clock = make(freq=60)
    web = config.virtuals[0]
    alerter.set_phase(Phase.RUNNING)
    alerter.start()
    try:
        alerter.verdict(web, web.reals[0], False)
        await asyncio.sleep(0.05)
        clock.now += 59
        await asyncio.sleep(0.05)
        assert len(sent) == 1
        clock.now += 1
        await asyncio.sleep(0.05)
        clock.now += 60
        await asyncio.sleep(0.05)
        alerter.verdict(web, web.reals[0], True)
        clock.now += 600
        await asyncio.sleep(0.05)
    finally:
        await alerter.close(1.0)
    assert subjects(sent) == [
        "Deleted real server: 192.0.2.11:80 (192.0.2.1:80)",
        "Inaccessible real server: 192.0.2.11:80 (192.0.2.1:80)",
        "Inaccessible real server: 192.0.2.11:80 (192.0.2.1:80)",
        "Added real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 2)",
    ]


async def test_a_reload_sends_nothing_for_reals_it_keeps() -> None:
    config, alerter, sent, _ = make(freq=60)
    web = config.virtuals[0]
    alerter.verdict(web, web.reals[0], True)
    alerter.verdict(web, web.reals[1], False)
    await settle()
    sent.clear()
    alerter.set_phase(Phase.RELOADING)
    alerter.reload(parse_text(CONFIG.format(freq=60, status="all", quiescent="no", extra=""), "a.cf"))
    await settle()
    assert sent == []
    # and the kept real's state survived: its next change is a change, not a first verdict
    reloaded = alerter.config.virtuals[0]
    alerter.verdict(reloaded, reloaded.reals[0], True)
    await settle()
    assert sent == []


async def test_a_reload_that_drops_a_serving_real_purges_it_and_a_new_weight_restores() -> None:
    config, alerter, sent, _ = make()
    web = config.virtuals[0]
    alerter.verdict(web, web.reals[0], True)
    alerter.verdict(web, web.reals[1], True)
    await settle()
    sent.clear()
    text = CONFIG.format(freq=0, status="all", quiescent="no", extra="")
    text = text.replace("\treal=192.0.2.12:80 masq 2\n", "")
    text = text.replace("192.0.2.11:80 masq 2", "192.0.2.11:80 masq 5")
    alerter.set_phase(Phase.RELOADING)
    alerter.reload(parse_text(text, "a.cf"))
    await settle()
    assert subjects(sent) == [
        "Restored real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 5)",
        "Purged real server (start): 192.0.2.12:80 (192.0.2.1:80)",
    ]
    assert {phase_of(m) for _, m in sent} == {"reloading"}


async def test_maintenance_takes_a_real_out_and_back() -> None:
    config, alerter, sent, _ = make()
    web = config.virtuals[0]
    alerter.verdict(web, web.reals[0], True)
    alerter.maintenance(web, web.reals[0], True)
    alerter.verdict(web, web.reals[0], True)  # still up by its check: no mail while in maintenance
    alerter.maintenance(web, web.reals[0], False)
    await settle()
    assert subjects(sent) == [
        "Added real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 2)",
        "Deleted real server: 192.0.2.11:80 (192.0.2.1:80)",
        "Added real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 2)",
    ]


async def test_fallback_changes_are_mailed_when_a_fallback_exists() -> None:
    config, alerter, sent, _ = make(extra="fallback=127.0.0.1:8080 masq")
    web = config.virtuals[0]
    alerter.fallback(web, True)
    alerter.fallback(web, False)
    await settle()
    assert subjects(sent) == [
        "Added fallback server: 127.0.0.1:8080 (192.0.2.1:80) (Weight set to 1)",
        "Deleted fallback server: 127.0.0.1:8080 (192.0.2.1:80)",
    ]
    config, alerter, sent, _ = make()  # no fallback server: nothing to report
    alerter.fallback(config.virtuals[0], True)
    await settle()
    assert sent == []
