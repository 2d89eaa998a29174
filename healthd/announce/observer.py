"""Feeds the announcer after the engine applied a change: the daemon's one hook into route announcement.

The engine reports a state change before the table has it; the route must
follow the table, so each notice waits for `flush()` (the kernel has the
change) before reading the snapshot. Notices that arrive meanwhile share one
update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from healthd.announce.announcer import Announcer
from healthd.announce.serving import serving
from healthd.config.model import Config
from healthd.engine.snapshot import Snapshot

log = logging.getLogger("healthd")


class EngineView(Protocol):
    async def flush(self) -> None: ...

    def snapshot(self) -> Snapshot: ...


class AnnounceObserver:
    def __init__(self, engine: EngineView, config: Config, announcer: Announcer | None = None,
                 make: Callable[[], Announcer] = Announcer) -> None:
        self.engine = engine
        self.config = config
        self._make = make
        self.announcer = announcer
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._closed = False

    @property
    def wanted(self) -> bool:
        return any(v.announce for v in self.config.virtuals)

    def set_config(self, config: Config) -> None:
        self.config = config
        self.notify()

    def notify(self) -> None:
        """Something may have changed: update the routes once the table has it."""
        if self._closed or (self.announcer is None and not self.wanted):
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._update())

    async def _update(self) -> None:
        while True:
            self._again = False
            await self.engine.flush()
            if self.announcer is None:
                self.announcer = self._make()
            try:
                self.announcer.update(serving(self.config, self.engine.snapshot()))
            except Exception:  # a bug here must not stop health checking
                log.exception("announce: update failed")
            if not self._again:
                return

    async def close(self) -> None:
        """Withdraw every route first, so that routers move traffic away before the table changes."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.announcer is not None:
            self.announcer.close()
