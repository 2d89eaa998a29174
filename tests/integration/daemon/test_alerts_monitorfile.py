"""The daemon's alert mails and monitorfile end to end: real web servers go down and up, a real exim receives.

`healthd -d --ipvs memory` checks two reals on loopback with `emailalert`,
`emailalertfreq=2` and `smtp=` pointing at a private exim, and a `monitorfile`.
The test reads what exim delivered (subjects, Daemon-Status, recipients) and
the monitorfile's lines while one real fails and recovers, through a reload
(no duplicate mails) and a stop (cleanstop's purge mails).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from healthd.daemon.logs import MASK
from tests.integration.alerts.mta import Exim, Received
from tests.integration.daemon.helpers import Healthd, WebServer, config_text, reals_of, web_servers
from tests.integration.services.servers import workdir

pytestmark = pytest.mark.root  # exim switches to its own user: only root may start it

VIP = "127.0.0.130"
ADDRESSES = ["127.0.0.32", "127.0.0.33"]
SECRET = "s3cr3t-pw"  # a passwd of the file, quoted in its comment: masked in every mail


@pytest.fixture
def exim() -> Iterator[Exim]:
    with workdir("daemon-exim") as wd:
        mta = Exim(wd).serve()
        yield mta
        mta.stop()


@pytest.fixture
async def servers() -> AsyncIterator[list[WebServer]]:
    async with web_servers(ADDRESSES) as started:
        yield started


def status_of(mail: Received) -> str:
    match = re.search(r"^Daemon-Status: (\w+)$", mail.body, re.M)
    assert match, mail.body
    return match.group(1)


async def mails(exim: Exim, count: int, limit: float = 20.0) -> list[Received]:
    got = await asyncio.to_thread(exim.wait_for, count, limit)
    assert len(got) >= count, [m.subject for m in got]
    return got


async def until(exim: Exim, predicate: Callable[[list[Received]], bool], limit: float = 20.0) -> None:
    async with asyncio.timeout(limit):
        while True:
            if predicate(exim.received()):
                return
            await asyncio.sleep(0.1)


async def test_mails_and_monitorfile_follow_the_reals(
    tmp_path: Path, exim: Exim, servers: list[WebServer]
) -> None:
    port = servers[0].port
    down, other = servers
    monitorfile = tmp_path / "monitor.log"
    head = (f"emailalert=ops@example.com\nemailalertfreq=2\nsmtp={exim.server}\n"
            f"emailalertfrom=lb@example.com\n")
    config = tmp_path / "alerts.cf"
    section = f'\tmonitorfile="{monitorfile}"\n\tpasswd="{SECRET}"\n\tcomment="reset with {SECRET}"\n'
    config.write_text(config_text(VIP, port, ADDRESSES, head=head) + section)
    daemon = Healthd(config, tmp_path / "run", None, {})
    await daemon.start()
    where = f"{VIP}:{port}"
    try:
        await daemon.wait_status(lambda s: all(r["state"] == "up" for r in reals_of(s).values()))
        started = await mails(exim, 2)
        assert sorted(m.subject for m in started) == sorted(
            f"Added real server: {s.label} ({where}) (Weight set to 2)" for s in servers)
        assert {status_of(m) for m in started} == {"starting"}
        assert {m.return_path for m in started} == {"lb@example.com"}
        assert {frozenset(m.envelope_to) for m in started} == {frozenset({"ops@example.com"})}

        # One real fails: a "Deleted" mail, then "Inaccessible" every 2 s while it stays down.
        down.page = "maintenance\n"
        await daemon.wait_status(lambda s: reals_of(s)[down.label]["state"] == "down")
        got = await mails(exim, 4)
        assert got[2].subject == f"Deleted real server: {down.label} ({where})"
        assert status_of(got[2]) == "running"
        assert got[3].subject == f"Inaccessible real server: {down.label} ({where})"

        # A reload of the same file sends nothing new about either real.
        before = [m.subject for m in exim.received() if not m.subject.startswith("Inaccessible")]
        assert daemon.proc is not None
        os.kill(daemon.proc.pid, signal.SIGHUP)
        await daemon.wait_status(lambda s: s["reloaded"] is not None)
        await asyncio.sleep(1.5)
        after = [m.subject for m in exim.received() if not m.subject.startswith("Inaccessible")]
        assert after == before

        # It recovers: "Added" again, and the repeats stop.
        down.page = "ok\n"
        await daemon.wait_status(lambda s: reals_of(s)[down.label]["state"] == "up")
        back = f"Added real server: {down.label} ({where}) (Weight set to 2)"
        await until(exim, lambda got: any(m.subject == back for m in got[2:]))
        settled = len(exim.received())
        await asyncio.sleep(3)
        assert len(exim.received()) == settled  # no "Inaccessible" once it is back

        # Stop: cleanstop purges both reals, each with a mail in the stopping phase.
        daemon.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.proc.wait(), 10) == 0
        final = (await mails(exim, settled + 2))[settled:]
        assert sorted(m.subject for m in final) == sorted(
            f"Purged real server (stop): {s.label} ({where})" for s in servers)
        assert {status_of(m) for m in final} == {"stopping"}
        everything = [m.message.as_string() for m in exim.received()]
        assert all(f"Comment: reset with {MASK}" in text for text in everything)
        assert not any(SECRET in text for text in everything)
        assert "Traceback" not in daemon.text()
    finally:
        await daemon.close()

    # The monitorfile has a line per check result, up and down, for both reals, in ldirectord's format.
    lines = monitorfile.read_text().splitlines()
    shape = re.compile(r"^\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\] \[(\d+)\] negotiate http tcp "
                       r"(127\.0\.0\.\d+) (\d+) 2 masq /ok\.html ok \[(up|down)\] (.+)$")
    parsed = [shape.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m][:3]
    seen = {(m.group(2), m.group(4)) for m in parsed if m}
    assert seen == {(down.address, "up"), (down.address, "down"), (other.address, "up")}
    assert {int(m.group(1)) for m in parsed if m} == {daemon.proc.pid}
    down_lines = [m for m in parsed if m and m.group(4) == "down"]
    assert len(down_lines) >= 2  # one per failed check, not one per state change
