"""Alert mails, monitorfile lines and the `execute=` children: the daemon feature that observes the engine.

One Feature (healthd.daemon.lifecycle) that subscribes to the engine's events:
RealChanged, MaintenanceChanged and FallbackChanged feed the alerter; CheckDone
(asked for only while some virtual has a monitorfile) feeds the monitorfiles;
ReloadDone brings all three to the new config. Each feature lives in its own
module; this one only routes, so that none of them can delay a check: mails go to
a bounded outbox, monitorfile lines to a buffer written by a thread, children's
commands run as background subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from healthd.alerts.alerter import Alerter, Phase
from healthd.alerts.message import hostname
from healthd.alerts.outbox import Outbox
from healthd.alerts.transport import SendmailTransport, SmtpTransport, Transport
from healthd.config.model import Config
from healthd.daemon import logs
from healthd.daemon.instances import Instances
from healthd.daemon.monitorfile import MonitorFiles
from healthd.engine import events
from healthd.vocab import State

if TYPE_CHECKING:
    from healthd.daemon.lifecycle import EngineLike

log = logging.getLogger("healthd")

MAIL_STOP_BUDGET = 3.0  # seconds the last mails (purges at stop) may delay the exit
CHILDREN_STOP_BUDGET = 20.0  # seconds `healthd CHILD stop` may take, all children at once


class Outputs:
    def __init__(self, config: Config, *, ipvs: str | None = None) -> None:
        host = hostname()

        def transport_for(server: str | None) -> Transport:
            return SmtpTransport(server, helo=host) if server else SendmailTransport()

        self.alerter = Alerter(config, Outbox(transport_for), hostname=host, mask=logs.MASKER.mask)
        self.monitor = MonitorFiles(config)
        self.children = Instances(config.settings.execute, own_path=config.path, ipvs=ipvs)
        self._engine: EngineLike | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._checks_unsubscribe: Callable[[], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._children_work: asyncio.Task[None] | None = None

    # -- Feature ------------------------------------------------------------------------------

    async def start(self, engine: EngineLike) -> None:
        self._engine = engine
        self._unsubscribe.append(engine.events.subscribe(
            self.on_event, events.RealChanged, events.MaintenanceChanged, events.FallbackChanged,
            events.ReloadDone,
        ))
        self._follow_checks()
        self.alerter.start()
        self.monitor.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._running(engine)))
        if self.children.names:
            self._children(self.children.start())

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._checks_unsubscribe is not None:
            self._checks_unsubscribe()
        for task in self._tasks:
            task.cancel()
        self.alerter.stopping()
        stop_children = self._children(self.children.stop()) if self.children.names else None
        await asyncio.gather(self.alerter.close(MAIL_STOP_BUDGET), self.monitor.close())
        if stop_children is not None:
            try:
                await asyncio.wait_for(asyncio.shield(stop_children), CHILDREN_STOP_BUDGET)
            except TimeoutError:
                log.warning("execute= children did not stop within %.0f s", CHILDREN_STOP_BUDGET)

    # -- events -------------------------------------------------------------------------------

    def on_event(self, event: events.Event) -> None:
        match event:
            case events.RealChanged(virtual=virtual, real=real, new=new):
                healthy = None if new is State.UNKNOWN else new is State.UP
                self.alerter.verdict(virtual, real, healthy)
            case events.MaintenanceChanged(virtual=virtual, real=real, in_maintenance=on):
                self.alerter.maintenance(virtual, real, on)
                self.monitor.maintenance(virtual, real, on)
            case events.FallbackChanged(virtual=virtual, active=active):
                self.alerter.fallback(virtual, active)
            case events.ReloadDone(ok=True, config=config):
                self._reloaded(config)
            case _:
                pass

    def on_check(self, event: events.Event) -> None:
        if isinstance(event, events.CheckDone):
            self.monitor.record(event.check, event.outcome)

    # -- internals ------------------------------------------------------------------------------

    async def _running(self, engine: EngineLike) -> None:
        await engine.first_round.wait()
        self.alerter.set_phase(Phase.RUNNING)

    def _reloaded(self, config: Config) -> None:
        phase = self.alerter.phase
        self.alerter.set_phase(Phase.RELOADING)  # the purge and weight mails of a reload say so
        self.alerter.reload(config)
        self.alerter.set_phase(phase)
        self.monitor.configure(config)
        self._follow_checks()
        if self.children.names or config.settings.execute:
            self._children(self.children.reload(config.settings.execute))

    def _follow_checks(self) -> None:
        """Per-check events only while some virtual has a monitorfile: otherwise they cost nothing."""
        if self._engine is None:
            return
        if self.monitor.active and self._checks_unsubscribe is None:
            self._checks_unsubscribe = self._engine.events.subscribe(self.on_check, events.CheckDone)
        elif not self.monitor.active and self._checks_unsubscribe is not None:
            self._checks_unsubscribe()
            self._checks_unsubscribe = None

    def _children(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Children's commands run one batch after another, never two at once, off the daemon's path."""
        previous = self._children_work

        async def chained() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await work

        self._children_work = asyncio.get_running_loop().create_task(chained(), name="healthd-execute")
        return self._children_work
