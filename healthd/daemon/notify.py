"""notifycommand (a healthd extension): run `CMD VIRTUAL REAL OLD NEW` on every state change of a real.

As keepalived's notify_up/notify_down, in one directive: global, or per virtual to
override. VIRTUAL and REAL are written as in the journal's VIRTUAL= and REAL= fields
(`10.0.0.1:80`, `fwmark 99`, `[2001:db8::2]:80`); OLD and NEW are up, down or unknown.

A daemon feature (wiring.features): it observes RealChanged on the engine's bus.
Each run goes through the project's process runner (healthd.process.run_process):
no shell, stdin closed, its own process group, output bounded, TERM then KILL at
TIMEOUT. Runs for one real are kept in order (a flap arrives as down then up);
runs for different reals are independent, so a hanging hook holds back only the
later runs of its own real. At most MAX_RUNNING run at once and MAX_PENDING wait;
beyond that a run is dropped with a log line rather than queued without bound.
Nothing here is awaited by the engine: a hook never delays a check or the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from typing import Any

from healthd.engine import events
from healthd.process import ProcessResult, run_process

log = logging.getLogger("healthd.notify")

TIMEOUT = 30.0  # seconds one run may take before TERM, then KILL
MAX_RUNNING = 16
MAX_PENDING = 256


class NotifyHooks:
    """Turns RealChanged events into notifycommand runs."""

    def __init__(self, timeout: float = TIMEOUT, max_running: int = MAX_RUNNING,
                 max_pending: int = MAX_PENDING) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self._slots = asyncio.Semaphore(max_running)
        self._tails: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.runs = 0
        self.dropped = 0
        self.results: list[ProcessResult] = []  # the last few, for tests and the curious
        self.closed = False

    async def start(self, engine: Any) -> None:
        """Feature: subscribe before the engine starts, so the first verdicts run the hook too."""
        engine.events.subscribe(self.on_event, events.RealChanged)

    async def stop(self) -> None:
        await self.close()

    def on_event(self, event: events.Event) -> None:
        if self.closed or not isinstance(event, events.RealChanged):
            return
        command = event.virtual.notifycommand
        if not command:
            return
        virtual, real = event.virtual.label, event.real.label
        try:
            argv = [*shlex.split(command), virtual, real, str(event.old), str(event.new)]
        except ValueError as exc:  # the config layer refuses this already; a guard, not a path
            log.error("notifycommand %r cannot be split into words: %s", command, exc)
            return
        self.submit((virtual, real), argv)

    def submit(self, key: tuple[str, str], argv: list[str]) -> None:
        if len(self._tasks) >= self.max_pending:
            self.dropped += 1
            log.warning("notifycommand for %s of %s not run: %d runs already waiting",
                        key[1], key[0], len(self._tasks), extra={"VIRTUAL": key[0], "REAL": key[1]})
            return
        previous = self._tails.get(key)
        task = asyncio.get_running_loop().create_task(self._run(key, argv, previous))
        self._tails[key] = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(key, t))

    def _done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._tails.get(key) is task:
            del self._tails[key]

    async def _run(self, key: tuple[str, str], argv: list[str], previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(previous)
        async with self._slots:
            result = await run_process(argv, self.timeout)
        self.runs += 1
        self.results = [*self.results[-19:], result]
        fields = {"VIRTUAL": key[0], "REAL": key[1]}
        if result.error or result.returncode != 0:
            why = result.error or f"exit status {result.returncode}"
            log.warning("notifycommand %s failed: %s", shlex.join(argv), why, extra=fields)
        else:
            log.debug("notifycommand %s done", shlex.join(argv), extra=fields)

    async def close(self, wait: float = 0.5) -> None:
        """Give runs in flight `wait` seconds, then cancel them (their process groups are killed)."""
        self.closed = True
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=wait)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
