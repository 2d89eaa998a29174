"""When ldirectord sends an alert mail, and to whom: table events in, mails to the outbox out.

ldirectord mails whenever it changes a real in the table (added, restored,
quiesced, deleted), adds or removes a fallback server, purges a real on stop or
reload, and, every `emailalertfreq` seconds, while a real stays out
("Inaccessible real server"). Each virtual's own `emailalert`, `emailalertfreq`,
`emailalertstatus` and `smtp` apply (the config layer already resolved them
against the globals); `emailalertstatus` filters on the daemon's phase.

healthd differs where ldirectord is noisy: a real is reported once per change
of what it is in the table, keyed by virtual and real, so a reload that keeps a
real sends nothing, and a start sends one mail per real with its first verdict
(ldirectord adds every real, mails, removes it, mails, then checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from healthd.alerts import message
from healthd.alerts.outbox import Outbox
from healthd.config.model import Config, Real, Virtual
from healthd.engine.policy import fallback_of

log = logging.getLogger("healthd")

TICK = 1.0  # seconds between looks at the repeat timers (ldirectord: once per checkinterval)


class Phase(enum.StrEnum):
    """ldirectord's daemon status, the filter of `emailalertstatus`."""

    STARTING = "starting"
    RUNNING = "running"
    RELOADING = "reloading"
    STOPPING = "stopping"


class Standing(enum.Enum):
    """What a real is in its virtual's table, as far as alerts care."""

    UNKNOWN = "unknown"  # no verdict yet: not in the table
    UP = "up"  # serving with its weight
    DOWN = "down"  # failed or in maintenance: removed, or at weight 0 when quiescent


@dataclass
class _RealState:
    virtual: Virtual
    real: Real
    healthy: bool | None = None
    maintenance: bool = False
    repeat_at: float | None = None  # monotonic time of the next "Inaccessible" mail

    @property
    def standing(self) -> Standing:
        if self.maintenance or self.healthy is False:
            return Standing.DOWN
        return Standing.UP if self.healthy else Standing.UNKNOWN

    @property
    def in_table(self) -> bool:
        return self.standing is Standing.UP or (self.standing is Standing.DOWN and self.virtual.quiescent)


def wants(virtual: Virtual, phase: Phase) -> bool:
    """Does the virtual's `emailalertstatus` allow a mail in this phase?"""
    statuses = virtual.emailalertstatus
    return "none" not in statuses and ("all" in statuses or phase.value in statuses)


class Alerter:
    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        *,
        hostname: str | None = None,
        mask: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick: float = TICK,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.hostname = hostname or message.hostname()
        self.mask = mask
        self.phase = Phase.STARTING
        self._clock = clock
        self.tick = tick
        self._reals: dict[tuple[str, str], _RealState] = {}
        self._index(config)
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._repeat_loop(), name="healthd-alerts")

    async def close(self, budget: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.outbox.close(budget)

    def set_phase(self, phase: Phase) -> None:
        self.phase = phase

    def reload(self, config: Config) -> None:
        """The new config is in force: purge mails for reals it dropped, keep every other real's state."""
        old = self._reals
        self.config = config
        self._index(config)
        kept_virtuals = {v.label for v in config.virtuals}
        for key, state in old.items():
            if key in self._reals:
                new = self._reals[key]
                new.healthy, new.maintenance = state.healthy, state.maintenance
                new.repeat_at = state.repeat_at if self._repeats(new.virtual) else None
                if state.real.weight != new.real.weight and new.standing is Standing.UP:
                    self._send(new.virtual, message.real_added(new.virtual, new.real, restored=True))
            elif key[0] in kept_virtuals and state.in_table:
                # ldirectord purges such a real from its start-up path, hence the tag "start".
                self._send(state.virtual, message.purged(state.virtual, state.real.label, "start"))

    def stopping(self) -> None:
        """healthd stops: the purge mails of `cleanstop` (one per real that was serving)."""
        self.phase = Phase.STOPPING
        for state in self._reals.values():
            if state.virtual.cleanstop and state.standing is Standing.UP:
                self._send(state.virtual, message.purged(state.virtual, state.real.label, "stop"))

    # -- events -----------------------------------------------------------------------------

    def verdict(self, virtual: Virtual, real: Real, healthy: bool | None) -> None:
        """A real's check verdict changed (None: no verdict, e.g. a new check after a reload)."""
        state = self._reals.get((virtual.label, real.label))
        if state is not None:
            self._update(state, lambda s: setattr(s, "healthy", healthy))

    def maintenance(self, virtual: Virtual, real: Real, on: bool) -> None:
        state = self._reals.get((virtual.label, real.label))
        if state is not None:
            self._update(state, lambda s: setattr(s, "maintenance", on))

    def fallback(self, virtual: Virtual, active: bool) -> None:
        fallback = fallback_of(virtual, self.config.settings)
        if fallback is not None:
            self._send(virtual, message.fallback_changed(virtual, fallback, active))

    # -- internals ----------------------------------------------------------------------------

    def _index(self, config: Config) -> None:
        self._reals = {(v.label, r.label): _RealState(v, r) for v in config.virtuals for r in v.reals}

    def _update(self, state: _RealState, change: Callable[[_RealState], None]) -> None:
        before = state.standing
        change(state)
        after = state.standing
        if after is before:
            return
        virtual, real = state.virtual, state.real
        if after is Standing.UP:
            state.repeat_at = None
            restored = before is Standing.DOWN and virtual.quiescent
            self._send(virtual, message.real_added(virtual, real, restored))
        elif after is Standing.DOWN:
            self._send(virtual, message.real_removed(virtual, real, virtual.quiescent))
            if self._repeats(virtual):
                state.repeat_at = self._clock() + virtual.emailalertfreq
        else:
            state.repeat_at = None

    @staticmethod
    def _repeats(virtual: Virtual) -> bool:
        return bool(virtual.emailalert) and virtual.emailalertfreq > 0

    async def _repeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            now = self._clock()
            for state in self._reals.values():
                if state.repeat_at is not None and now >= state.repeat_at:
                    state.repeat_at = now + state.virtual.emailalertfreq
                    self._send(state.virtual, message.inaccessible(state.virtual, state.real))

    def _send(self, virtual: Virtual, subject: str) -> None:
        if not virtual.emailalert or not wants(virtual, self.phase):
            return
        if not self.outbox.accepts(virtual.smtp):  # a burst beyond the queue: not even composed
            self.outbox.refuse(virtual.smtp, subject)
            return
        mail = message.compose(
            virtual, subject, self.phase.value, emailalert=virtual.emailalert,
            emailalertfrom=self.config.settings.emailalertfrom, hostname=self.hostname, mask=self.mask,
        )
        log.info("emailalert: %s", mail.subject, extra={"VIRTUAL": virtual.label})
        self.outbox.submit(virtual.smtp, mail)
