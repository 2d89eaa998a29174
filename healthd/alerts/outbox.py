"""Between the event loop and the mail transports: bounded queues, a deadline per mail, a lane per server.

`submit()` never waits: it appends to the lane of the mail's transport and returns,
so a check or a state change never waits for mail. Each lane sends its mails in
order (a "Deleted" before the "Added" that follows it), each within MAIL_DEADLINE.
A lane whose server failed drops what comes for PAUSE_AFTER_FAILURE seconds
instead of spending a deadline on every queued mail, so a dead or dripping server
costs one deadline per pause and never grows a backlog; a full lane drops the
newest mail. Every drop is counted and logged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from healthd.alerts.message import Mail
from healthd.alerts.transport import SendError, Transport

log = logging.getLogger("healthd")

QUEUE_LIMIT = 500  # mails waiting per lane
MAIL_DEADLINE = 20.0  # seconds one mail may take, connection to final answer
PAUSE_AFTER_FAILURE = 30.0  # seconds a lane drops mails after its server failed
DROP_REPORT = 10.0  # seconds between two log lines about dropped mails of one lane


@dataclass
class LaneStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0


@dataclass
class _Lane:
    transport: Transport
    queue: collections.deque[Mail] = field(default_factory=collections.deque)
    task: asyncio.Task[None] | None = None
    paused_until: float = 0.0
    unreported_drops: int = 0
    next_drop_report: float = 0.0
    stats: LaneStats = field(default_factory=LaneStats)


class Outbox:
    def __init__(
        self,
        transport_for: Callable[[str | None], Transport],
        *,
        limit: int = QUEUE_LIMIT,
        deadline: float = MAIL_DEADLINE,
        pause: float = PAUSE_AFTER_FAILURE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport_for = transport_for
        self.limit = limit
        self.deadline = deadline
        self.pause = pause
        self._clock = clock
        self._lanes: dict[str | None, _Lane] = {}
        self._closed = False

    def accepts(self, server: str | None) -> bool:
        """Would a mail for `server` be queued now? (So that a caller never composes a mail to drop.)"""
        lane = self._lanes.get(server)
        return not self._closed and (lane is None or not self._refuses(lane))

    def refuse(self, server: str | None, subject: str) -> None:
        """Count and report a mail the caller did not compose because accepts() said no."""
        self._drop(self._lane(server), subject)

    def submit(self, server: str | None, mail: Mail) -> bool:
        """Queue `mail` for `server` (None: the local MTA); False when it was dropped."""
        if self._closed:
            return False
        lane = self._lane(server)
        if self._refuses(lane):
            self._drop(lane, mail.subject)
            return False
        lane.queue.append(mail)
        if lane.task is None or lane.task.done():
            lane.task = asyncio.get_running_loop().create_task(self._drain(lane), name="healthd-mail")
        return True

    def _lane(self, server: str | None) -> _Lane:
        lane = self._lanes.get(server)
        if lane is None:
            lane = self._lanes[server] = _Lane(self._transport_for(server))
        return lane

    def _refuses(self, lane: _Lane) -> bool:
        return self._clock() < lane.paused_until or len(lane.queue) >= self.limit

    def stats(self) -> dict[str, LaneStats]:
        return {lane.transport.name: lane.stats for lane in self._lanes.values()}

    def pending(self) -> int:
        return sum(len(lane.queue) for lane in self._lanes.values())

    async def close(self, budget: float) -> None:
        """Let queued mails go for up to `budget` seconds, then give up on the rest."""
        self._closed = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None and not lane.task.done()]
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=budget)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        left = self.pending()
        if left:
            log.warning("%d alert mail(s) not sent: healthd is stopping", left)

    async def _drain(self, lane: _Lane) -> None:
        while lane.queue:
            mail = lane.queue.popleft()
            if self._clock() < lane.paused_until:
                self._drop(lane, mail.subject)
                continue
            try:
                async with asyncio.timeout(self.deadline):
                    await lane.transport.send(mail)
            except TimeoutError:
                self._failed(lane, mail, f"no answer within {self.deadline:g} s")
            except SendError as exc:
                self._failed(lane, mail, str(exc))
            except Exception as exc:  # a transport bug must not end the lane
                self._failed(lane, mail, f"{type(exc).__name__}: {exc}")
            else:
                lane.stats.sent += 1
                log.info("alert mail sent via %s to %s: %s", lane.transport.name,
                         ", ".join(mail.recipients), mail.subject)
        if lane.unreported_drops:
            log.warning("%d alert mail(s) for %s were dropped (server failing or queue full)",
                        lane.unreported_drops, lane.transport.name)
            lane.unreported_drops = 0

    def _failed(self, lane: _Lane, mail: Mail, why: str) -> None:
        lane.stats.failed += 1
        lane.paused_until = self._clock() + self.pause
        log.error("alert mail not sent via %s: %s (subject: %s); mails for it are dropped for %g s",
                  lane.transport.name, why, mail.subject, self.pause)

    def _drop(self, lane: _Lane, subject: str) -> None:
        lane.stats.dropped += 1
        lane.unreported_drops += 1
        now = self._clock()
        # With no drain loop to report them, drops are reported here, at most every DROP_REPORT s.
        if (lane.task is None or lane.task.done()) and now >= lane.next_drop_report:
            log.warning("%d alert mail(s) for %s dropped (server failing or queue full), the last: %s",
                        lane.unreported_drops, lane.transport.name, subject)
            lane.unreported_drops = 0
            lane.next_drop_report = now + DROP_REPORT
