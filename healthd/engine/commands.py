"""fallbackcommand: run `CMD start|stop VIP:PORT tcp|udp|fwm` when a virtual's fallback switches.

No shell: the command line is split like a shell would split words, then run by
healthd.process.run_process (own process group, TERM then KILL at the timeout,
bounded output). Runs of one virtual are serialised so that `start` and `stop`
arrive in order; the event loop never waits on a child.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex

from healthd.config.model import Virtual
from healthd.engine import events
from healthd.engine.bus import EventBus
from healthd.ipvs.model import ServiceKey
from healthd.process import ProcessResult, run_process
from healthd.vocab import host_port


def fallback_argv(command: str, action: str, virtual: Virtual) -> list[str]:
    """The argument vector for one run; raises ValueError on an unbalanced quote."""
    if virtual.fwmark is not None:
        where = str(virtual.fwmark)
    else:
        where = host_port(virtual.address or "", virtual.port)
    return [*shlex.split(command), action, where, str(virtual.protocol)]


class CommandQueue:
    """Runs commands in order per key (a virtual), concurrently across keys, without blocking."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._tails: dict[object, asyncio.Task[ProcessResult]] = {}

    def submit(self, key: object, argv: list[str]) -> asyncio.Task[ProcessResult]:
        previous = self._tails.get(key)

        async def run() -> ProcessResult:
            if previous is not None:
                with contextlib.suppress(BaseException):
                    await previous
            return await run_process(argv, self.timeout)

        task = asyncio.get_running_loop().create_task(run())
        self._tails[key] = task
        task.add_done_callback(lambda t: self._tails.pop(key, None) if self._tails.get(key) is t else None)
        return task

    async def drain(self, limit: float | None = None) -> None:
        """Wait for every queued command (each is bounded by its own timeout)."""
        tasks = list(self._tails.values())
        if tasks:
            await asyncio.wait(tasks, timeout=limit)


class FallbackCommands:
    """Runs each virtual's fallbackcommand so that it follows the fallback state of the applied table."""

    def __init__(self, bus: EventBus, timeout: float = 30.0) -> None:
        self._bus = bus
        self.queue = CommandQueue(timeout)
        self._state: dict[ServiceKey, str] = {}  # last action run (or due) per virtual: start | stop

    def follow(self, key: ServiceKey, virtual: Virtual, active: bool, default_command: str | None) -> None:
        """`start` when the fallback became active, `stop` when it was started and is no longer."""
        action = "start" if active else "stop"
        # Only a fallback that was started is ever stopped: a start-up with reals up runs nothing.
        if self._state.get(key, "stop") == action:
            return
        if virtual.fallbackcommand or default_command:
            self.submit(key, virtual, action, default_command)
        self._state[key] = action

    def retire(self, key: ServiceKey, virtual: Virtual, default_command: str | None) -> None:
        """The virtual left the configuration (or healthd stops): stop what was started."""
        if self._state.pop(key, None) == "start":
            self.submit(key, virtual, "stop", default_command)

    def stop_all(self, virtuals: dict[ServiceKey, Virtual], default_command: str | None) -> None:
        for key, virtual in virtuals.items():
            if self._state.get(key) == "start":
                self.submit(key, virtual, "stop", default_command)

    def submit(self, key: ServiceKey, virtual: Virtual, action: str, default_command: str | None) -> None:
        command = virtual.fallbackcommand or default_command
        self._state[key] = action
        if not command:
            return
        try:
            argv = fallback_argv(command, action, virtual)
        except ValueError as exc:
            self._bus.emit(events.CommandFinished(virtual, (command,), None, "",
                                                  f"cannot parse command: {exc}"))
            return
        task = self.queue.submit(key, argv)
        task.add_done_callback(lambda t: self._done(virtual, t))

    def _done(self, virtual: Virtual, task: asyncio.Task[ProcessResult]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        result = task.result()
        self._bus.emit(events.CommandFinished(virtual, result.argv, result.returncode, result.output,
                                              result.error))
