"""What the daemon produces beside the IPVS table: alert mails, monitorfile lines and the `execute=` children.

One object the daemon drives through its phases (started, running, reloading,
reloaded, stopping, close) and the engine feeds with its events and, for
monitorfiles, each check result. Each feature lives in its own module; this one
only routes, so that none of them can delay a check: mails go to a bounded
outbox, monitorfile lines to a buffer written by a thread, children's commands
run as background subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from healthd.alerts.alerter import Alerter, Phase
from healthd.alerts.message import hostname
from healthd.alerts.outbox import Outbox
from healthd.alerts.transport import SendmailTransport, SmtpTransport, Transport
from healthd.checks.spec import CheckSpec, Outcome
from healthd.config.model import Config
from healthd.daemon import logs
from healthd.daemon.instances import Instances
from healthd.daemon.monitorfile import MonitorFiles
from healthd.engine import events
from healthd.engine.health import State

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
        self._children_work: asyncio.Task[None] | None = None

    # -- from the engine ----------------------------------------------------------------------

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
            case _:
                pass

    def on_outcome(self, spec: CheckSpec, outcome: Outcome) -> None:
        self.monitor.record(spec, outcome)

    @property
    def wants_outcomes(self) -> bool:
        """Only monitorfiles need every check result; without one, checks are not observed at all."""
        return self.monitor.active

    # -- from the daemon ----------------------------------------------------------------------

    def started(self) -> None:
        self.alerter.start()
        self.monitor.start()
        if self.children.names:
            self._children(self.children.start())

    def running(self) -> None:
        self.alerter.set_phase(Phase.RUNNING)

    def reloading(self) -> None:
        self.alerter.set_phase(Phase.RELOADING)

    def reloaded(self, config: Config) -> None:
        self.alerter.reload(config)
        self.monitor.configure(config)
        if self.children.names or config.settings.execute:
            self._children(self.children.reload(config.settings.execute))

    def stopping(self) -> None:
        self.alerter.stopping()

    async def close(self) -> None:
        stop_children = self._children(self.children.stop()) if self.children.names else None
        await asyncio.gather(self.alerter.close(MAIL_STOP_BUDGET), self.monitor.close())
        if stop_children is not None:
            try:
                await asyncio.wait_for(asyncio.shield(stop_children), CHILDREN_STOP_BUDGET)
            except TimeoutError:
                log.warning("execute= children did not stop within %.0f s", CHILDREN_STOP_BUDGET)

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
