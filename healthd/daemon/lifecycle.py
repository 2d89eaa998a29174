"""The running daemon: start, reload (SIGHUP, autoreload), stop (SIGTERM/SIGINT), in one asyncio loop.

The daemon owns the process-level concerns (signals, systemd, logging, pidfile,
control socket, the config file) and hands everything about checks and the
IPVS table to the engine, through the small EngineLike interface below.
A reload parses and validates the whole new file first; an invalid file
changes nothing but the log and the systemd status.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from healthd.config.model import Config, ConfigError
from healthd.daemon import logs
from healthd.daemon.control import ControlServer
from healthd.daemon.systemd import Notifier

log = logging.getLogger("healthd")

STOP_BUDGET = 0.8  # seconds the engine gets to stop, so that the process exits within a second
CALLBACK_TIMEOUT = 30.0
STATUS_COALESCE = 0.1  # seconds: state changes within this window share one STATUS= message


@dataclass(frozen=True)
class StateChange:
    """One real server changed state, as the engine reports it."""

    virtual: str  # Virtual.label
    real: str  # Real.label
    check: str  # short description of the check ("http GET /ok.html")
    up: bool
    detail: str  # the last check's Outcome.detail
    first: bool = False  # the real's first verdict since healthd started


class EngineLike(Protocol):
    """What the daemon needs from the engine."""

    async def start(self) -> None: ...

    async def wait_first_round(self) -> None:
        """Returns once every check ran once and its result is applied to the table."""
        ...

    async def reload(self, config: Config) -> None: ...

    async def stop(self) -> None:
        """Stop checking; honour cleanstop and run `fallbackcommand stop`."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """{"virtuals": [{"virtual", ..., "reals": [{"real", "weight", "state", ...}]}]}"""
        ...


EngineFactory = Callable[[Config, Callable[[StateChange], None]], EngineLike]
Loader = Callable[[str], Config]


def summary(snapshot: dict[str, Any]) -> str:
    """The one-line STATUS for systemd: "5/6 reals up in 2 virtual services", and what the kernel refused."""
    virtuals = snapshot.get("virtuals", [])
    reals = [r for v in virtuals for r in v.get("reals", [])]
    up = sum(1 for r in reals if r.get("state") == "up")
    noun = "virtual service" if len(virtuals) == 1 else "virtual services"
    line = f"{up}/{len(reals)} reals up in {len(virtuals)} {noun}"
    refused = snapshot.get("refused", ())
    if refused:
        # one refusal is named in full (the usual case: one bad line); more are counted
        line += (f"; IPVS {refused[0]}" if len(refused) == 1
                 else f"; {len(refused)} IPVS entries refused by the kernel (healthd status lists them)")
    return line


class FileWatch:
    """Notices that a file changed: size, mtime and inode first, then content, so touch alone is no change."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stat, self._digest = self._read()

    def _read(self) -> tuple[tuple[int, int, int] | None, bytes | None]:
        try:
            st = os.stat(self.path)
            with open(self.path, "rb") as f:
                digest = hashlib.sha256(f.read()).digest()
        except OSError:
            return None, None
        return (st.st_size, st.st_mtime_ns, st.st_ino), digest

    def changed(self) -> bool:
        try:
            st = os.stat(self.path)
            quick = (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            quick = None
        if quick == self._stat:
            return False
        stat, digest = self._read()
        self._stat = stat
        if digest == self._digest or digest is None:
            return False  # same content, or the file is briefly missing during an editor's save
        self._digest = digest
        return True


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        engine_factory: EngineFactory,
        loader: Loader,
        notifier: Notifier | None = None,
        control_path: Path | None = None,
        ipvs_kind: str = "netlink",
        watch_interval: float = 1.0,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.engine_factory = engine_factory
        self.loader = loader
        self.notifier = notifier or Notifier()
        self.control_path = control_path
        self.ipvs_kind = ipvs_kind
        self.watch_interval = watch_interval
        self.on_started = on_started
        self.engine: EngineLike | None = None
        self.ready = asyncio.Event()  # READY=1 was sent (first round applied)
        self.started_at = time.time()
        self.reloaded_at: float | None = None
        self.reload_error: list[str] = []  # FILE:LINE issues of the last failed reload
        self.reloads = 0
        self._stop = asyncio.Event()
        self._reload_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._control: ControlServer | None = None
        self._watch = FileWatch(config.path)
        self._status_pending: asyncio.TimerHandle | None = None

    # --- requests from signals, the file watch and tests ---------------------------------

    def request_reload(self) -> None:
        self._reload_wanted.set()

    def request_stop(self) -> None:
        self._stop.set()

    # --- the main coroutine -------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; the exit status of the process."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        logs.MASKER.update(logs.config_secrets(self.config))
        try:
            return await self._run()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    async def _run(self) -> int:
        count = len(self.config.virtuals)
        log.info(
            "starting with %s (%d virtual service%s, IPVS table: %s)",
            self.config.path, count, "" if count == 1 else "s", self._table_words(),
        )
        self.engine = self.engine_factory(self.config, self._on_state_change)
        try:
            await self.engine.start()
        except Exception as exc:
            log.error("cannot start: %s", exc)
            self.notifier.stopping(f"failed to start: {exc}")
            return 1
        if self.control_path is not None:
            self._control = ControlServer(self.control_path, self.status_snapshot)
            try:
                await self._control.start()
            except OSError as exc:
                log.warning("no control socket at %s: %s", self.control_path, exc.strerror or exc)
                self._control = None
        if self.on_started is not None:
            self.on_started()
        self._spawn(self.notifier.run_watchdog())
        self._spawn(self._first_round())
        self._spawn(self._reload_loop())
        self._spawn(self._watch_loop())
        await self._stop.wait()
        await self._shutdown()
        return 0

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def _first_round(self) -> None:
        assert self.engine is not None
        await self.engine.wait_first_round()
        status = summary(self.engine.snapshot())
        log.info("first round of checks applied: %s", status)
        self.notifier.ready(status)
        self.ready.set()

    async def _shutdown(self) -> None:
        log.info("stopping")
        if self._status_pending is not None:
            self._status_pending.cancel()
        self.notifier.stopping()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.engine is not None:
            try:
                await asyncio.wait_for(self.engine.stop(), STOP_BUDGET)
            except TimeoutError:
                log.warning("the engine did not stop within %.1f s; exiting anyway", STOP_BUDGET)
            except Exception as exc:
                log.error("error while stopping: %s", exc)
        if self._control is not None:
            await self._control.close()
        self.notifier.close()
        log.info("stopped")

    # --- state changes --------------------------------------------------------------

    def _on_state_change(self, change: StateChange) -> None:
        logs.state_change(change.virtual, change.real, change.check, change.up, change.detail, change.first)
        if self.ready.is_set() and self.engine is not None and self._status_pending is None:
            # A burst of changes (a switch failing) becomes one STATUS, and one snapshot of the engine.
            loop = asyncio.get_running_loop()
            self._status_pending = loop.call_later(STATUS_COALESCE, self._send_status)

    def _send_status(self) -> None:
        self._status_pending = None
        if self.engine is not None and not self._stop.is_set():
            self.notifier.status(self._status_line())

    def _status_line(self) -> str:
        assert self.engine is not None
        line = summary(self.engine.snapshot())
        if self.reload_error:
            line += f"; reload failed ({len(self.reload_error)} errors), running the previous configuration"
        return line

    def _table_words(self) -> str:
        if self.ipvs_kind == "memory":
            return "in-memory (no kernel IPVS; for trying healthd out)"
        return "kernel (netlink)"

    # --- reload ------------------------------------------------------------------------

    async def _reload_loop(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Parse and validate the whole file, then hand it to the engine; False when it was invalid."""
        assert self.engine is not None
        self.notifier.reloading()
        log.info("reloading %s", self.config.path)
        try:
            new = await asyncio.to_thread(self.loader, self.config.path)
        except ConfigError as exc:
            self.reload_error = [str(issue) for issue in exc.issues] or [str(exc)]
            for issue in self.reload_error:
                log.error("reload: %s", issue)
            log.error(
                "reload failed: %d errors in %s; still running the previous configuration",
                len(self.reload_error), self.config.path,
            )
            self._reload_done()
            return False
        except OSError as exc:
            self.reload_error = [f"{self.config.path}: {exc.strerror or exc}"]
            log.error("reload failed: cannot read %s: %s; still running the previous configuration",
                      self.config.path, exc.strerror or exc)
            self._reload_done()
            return False
        logs.MASKER.update(logs.config_secrets(new) + logs.config_secrets(self.config))
        try:
            await self.engine.reload(new)
        except Exception as exc:
            # Not the file's fault: say so, and keep serving with what the engine still has.
            self.reload_error = [f"{self.config.path}: the new configuration could not be applied: {exc}"]
            log.error("reload failed: %s", self.reload_error[0])
            self._reload_done()
            return False
        self.config = new
        logs.MASKER.update(logs.config_secrets(new))
        self.reload_error = []
        self.reloads += 1
        self.reloaded_at = time.time()
        log.info("reloaded %s: %s", new.path, self._status_line())
        self._reload_done()
        return True

    def _reload_done(self) -> None:
        # READY=1 ends systemd's "reloading" state; before the first round it would also end
        # start-up too early, so then only the status line changes.
        if self.ready.is_set():
            self.notifier.send(READY=1, STATUS=self._status_line())
        else:
            self.notifier.status(self._status_line())

    # --- autoreload --------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.watch_interval)
            if not self.config.settings.autoreload:
                self._watch = FileWatch(self.config.path)  # keep the baseline fresh while off
                continue
            if not self._watch.changed():
                continue
            log.info("%s changed on disk", self.config.path)
            if self.config.settings.callback:
                await self._run_callback(self.config.settings.callback)
            self.request_reload()

    async def _run_callback(self, callback: str) -> None:
        """`callback` runs with the config path as its argument, as ldirectord does."""
        try:
            argv = [*shlex.split(callback), self.config.path]
        except ValueError as exc:
            log.error("callback %r cannot be parsed: %s", callback, exc)
            return
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
            )
        except OSError as exc:
            log.error("callback %s could not run: %s", argv[0], exc.strerror or exc)
            return
        try:
            code = await asyncio.wait_for(proc.wait(), CALLBACK_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            log.error("callback %s did not finish within %.0f s and was killed", argv[0], CALLBACK_TIMEOUT)
            return
        if code != 0:
            log.warning("callback %s exited with status %d", argv[0], code)

    # --- status ------------------------------------------------------------------------

    def status_snapshot(self) -> dict[str, Any]:
        """What `healthd status --json` prints."""
        engine = self.engine.snapshot() if self.engine is not None else {"virtuals": []}
        return {
            "pid": os.getpid(),
            "config": self.config.path,
            "ipvs": self.ipvs_kind,
            "ready": self.ready.is_set(),
            "started": self.started_at,
            "reloaded": self.reloaded_at,
            "reload_errors": list(self.reload_error),
            "summary": summary(engine),
            **engine,
        }
