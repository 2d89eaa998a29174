"""Fits healthd.engine.Engine to the daemon: its events become log records, its snapshot plain JSON.

The adapter owns the parts the engine borrows (the check runner and the
reconciler over the chosen IPVS backend) and releases them on stop.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from healthd.announce.observer import AnnounceObserver
from healthd.checks.registry import CheckRunner
from healthd.config.model import Config
from healthd.daemon.lifecycle import StateChange
from healthd.engine import events
from healthd.engine.engine import Engine
from healthd.engine.health import State
from healthd.ipvs.backend import Backend
from healthd.ipvs.reconcile import Reconciler

log = logging.getLogger("healthd")

FALLBACK_COMMAND_WAIT = 0.5  # seconds a `fallbackcommand stop` may delay the exit


class EngineAdapter:
    def __init__(self, config: Config, backend: Backend, on_change: Callable[[StateChange], None]) -> None:
        self.runner = CheckRunner()
        self.on_change = on_change
        self.engine = Engine(config, self.runner, Reconciler(backend), on_event=self._on_event)
        self.announce = AnnounceObserver(self.engine, config)

    async def start(self) -> None:
        await self.runner.start()
        try:
            await self.engine.start()
        except BaseException:
            await self.runner.close()
            raise

    async def wait_first_round(self) -> None:
        await self.engine.first_round.wait()
        self.announce.notify()

    async def reload(self, config: Config) -> None:
        await self.engine.reload(config)
        self.announce.set_config(config)

    async def stop(self) -> None:
        await self.announce.close()
        try:
            await self.engine.stop(command_wait=FALLBACK_COMMAND_WAIT)
        finally:
            await self.runner.close()

    def snapshot(self) -> dict[str, Any]:
        snap = dataclasses.asdict(self.engine.snapshot())
        snap.pop("config", None)  # the daemon reports the path it reads
        return snap

    def _on_event(self, event: events.Event) -> None:
        self.announce.notify()
        match event:
            case events.RealChanged(virtual=virtual, real=real, check=check, old=old, new=new,
                                    outcome=outcome):
                if new is State.UNKNOWN:
                    return  # not a verdict: nothing for an operator to act on
                detail = outcome.detail if outcome is not None else "no check result"
                self.on_change(StateChange(virtual.label, real.label, events.describe(check),
                                           new is State.UP, detail, first=old is State.UNKNOWN))
            case events.MaintenanceChanged(virtual=virtual, real=real, in_maintenance=on):
                log.info(
                    "real server %s of virtual service %s %s maintenance",
                    real.label, virtual.label, "entered" if on else "left",
                    extra={"VIRTUAL": virtual.label, "REAL": real.label,
                           "MAINTENANCE": "yes" if on else "no"},
                )
            case events.FallbackChanged(virtual=virtual, active=active):
                if active:
                    log.warning("no real server of %s is up: the fallback server takes the traffic",
                                virtual.label, extra={"VIRTUAL": virtual.label, "FALLBACK": "on"})
                else:
                    log.info("a real server of %s is up again: the fallback server is withdrawn",
                             virtual.label, extra={"VIRTUAL": virtual.label, "FALLBACK": "off"})
            case events.CommandFinished(virtual=virtual, argv=argv, returncode=code, error=error):
                if error or code not in (0, None):
                    log.warning("fallbackcommand %s for %s failed: %s", " ".join(argv), virtual.label,
                                error or f"exit status {code}", extra={"VIRTUAL": virtual.label})
                else:
                    log.info("fallbackcommand %s for %s done", " ".join(argv), virtual.label,
                             extra={"VIRTUAL": virtual.label})
            case events.SyncFailed(error=error):
                log.error("cannot update the IPVS table (will retry): %s", error)
            case events.Notice(message=message):
                log.warning("%s", message)
            case _:
                log.debug("engine event %r", event)
