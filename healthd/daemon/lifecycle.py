"""The running daemon: start, reload (SIGHUP, autoreload), stop (SIGTERM/SIGINT), in one asyncio loop.

The daemon owns the process-level concerns (signals, systemd, logging, pidfile,
control socket, the config file) and hands everything about checks and the
IPVS table to the engine, through the small EngineLike interface below. It
consumes the engine's typed events and snapshot directly, as one observer among
the daemon features (Feature below: email alerts, metrics, ...).
A reload parses and validates the whole new file first; an invalid file
changes nothing but the log and the systemd status.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shlex
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from healthd.config.model import Config, ConfigError
from healthd.daemon import logs, pidfile, status
from healthd.daemon.control import ControlServer
from healthd.daemon.systemd import Notifier
from healthd.engine import events
from healthd.engine.bus import EventBus
from healthd.engine.snapshot import Snapshot, as_json, reals_up
from healthd.process import run_process
from healthd.threads import STOP_SIGNALS
from healthd.vocab import State
from healthd.web.telemetry import Telemetry

log = logging.getLogger("healthd")

STOP_BUDGET = 0.8  # seconds the engine gets to stop, so that the process exits within a second
CALLBACK_TIMEOUT = 30.0
STATUS_COALESCE = 0.1  # seconds: state changes within this window share one STATUS= message


class EngineLike(Protocol):
    """What the daemon needs from the engine (healthd.engine.engine.Engine)."""

    events: EventBus  # where the daemon and every feature subscribe
    first_round: asyncio.Event  # set once every check ran once and its result is applied

    async def start(self) -> None: ...

    async def reload(self, config: Config) -> None: ...

    async def stop(self, cleanstop: bool | None = None) -> None:
        """Stop checking; honour cleanstop (False: leave the table for the next healthd) and run
        `fallbackcommand stop`."""
        ...

    def snapshot(self) -> Snapshot: ...

    async def snapshot_sliced(self) -> Snapshot:
        """snapshot(), built without holding the event loop for long (large tables)."""
        ...


class Feature(Protocol):
    """A daemon feature (email alerts, monitorfile, metrics, notify hooks, ...): an observer of the engine.

    start() runs before the engine starts, so the feature sees the first events: it
    subscribes to engine.events and may keep `engine` to read engine.snapshot() later.
    stop() runs after the engine stopped (flush, close files and servers).
    """

    async def start(self, engine: EngineLike) -> None: ...

    async def stop(self) -> None: ...


EngineFactory = Callable[[Config], EngineLike]
Loader = Callable[[str], Config]


def summary(snapshot: Snapshot) -> str:
    """The one-line STATUS for systemd: "5/6 reals up in 2 virtual services", and what the kernel refused."""
    up, reals = reals_up(snapshot)
    count = len(snapshot.virtuals)
    noun = "virtual service" if count == 1 else "virtual services"
    line = f"{up}/{reals} reals up in {count} {noun}"
    if snapshot.refused:
        # one refusal is named in full (the usual case: one bad line); more are counted
        refused = snapshot.refused
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
        features: Sequence[Feature] = (),
        http: tuple[str, int] | None = None,
        owns_process: bool = False,
    ) -> None:
        self.config = config
        # The daemon is the whole process (not a test or the demo): once it has stopped, a second
        # SIGTERM, SIGINT or SIGHUP must not kill a process that is closing down cleanly.
        self.owns_process = owns_process
        self.engine_factory = engine_factory
        self.loader = loader
        self.notifier = notifier or Notifier()
        self.control_path = control_path
        self.ipvs_kind = ipvs_kind
        self.watch_interval = watch_interval
        self.on_started = on_started
        self.features = tuple(features)
        self.engine: EngineLike | None = None
        self.ready = asyncio.Event()  # READY=1 was sent (first round applied)
        self.started_at = time.time()
        self.reloaded_at: float | None = None
        self.reload_error: list[str] = []  # FILE:LINE issues of the last failed reload
        self.reloads = 0
        self.reload_failures = 0
        self.config_mtime = _mtime(config.path)
        self.timeline = status.Timeline()
        self.telemetry = Telemetry()  # fed from the engine's events while --http is on
        self.http = http  # (address, port) of the status page and /metrics, None: off
        self.web: Any = None  # healthd.web.server.WebServer while serving
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
        signals = STOP_SIGNALS
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        logs.MASKER.update(logs.config_secrets(self.config))
        try:
            return await self._run()
        finally:
            release_signals(loop, signals, ignore=self.owns_process)

    async def _run(self) -> int:
        count = len(self.config.virtuals)
        log.info(
            "starting with %s (%d virtual service%s, IPVS table: %s)",
            self.config.path, count, "" if count == 1 else "s", self._table_words(),
        )
        self.engine = self.engine_factory(self.config)
        self.engine.events.subscribe(self._on_event)
        if self.http is not None:
            self.telemetry.attach(self.engine.events)
        try:
            for feature in self.features:
                await feature.start(self.engine)
            await self.engine.start()
        except Exception as exc:
            log.error("cannot start: %s", exc)
            self.notifier.stopping(f"failed to start: {exc}")
            await self._stop_features()
            return 1
        if self.control_path is not None:
            self._control = ControlServer(self.control_path, self.status_document)
            try:
                await self._control.start()
            except OSError as exc:
                log.warning("no control socket at %s: %s", self.control_path, exc.strerror or exc)
                self._control = None
        if self.http is not None:
            await self._start_web(*self.http)
        if self.on_started is not None:
            self.on_started()
        self._spawn(self.notifier.run_watchdog())
        self._spawn(self._first_round())
        self._spawn(self._reload_loop())
        self._spawn(self._watch_loop())
        await self._stop.wait()
        await self._shutdown()
        return 0

    async def _start_web(self, host: str, port: int) -> None:
        from healthd.web.server import WebServer

        web = WebServer(host, port, self)
        try:
            await web.start()
        except OSError as exc:
            # The checks matter more than the page: keep running, and say so loudly.
            log.error("cannot serve the status page on %s:%d: %s; running without it",
                      host, port, exc.strerror or exc)
            return
        self.web = web
        log.info("status page on %s (metrics: %smetrics)", web.url, web.url)

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def _first_round(self) -> None:
        assert self.engine is not None
        await self.engine.first_round.wait()
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
                if pidfile.keep_table_requested():
                    log.info("stopping for a restart (%s exists): the IPVS table is left as it is, for the "
                             "next healthd to adopt", pidfile.keep_table_path())
                    await asyncio.wait_for(self.engine.stop(cleanstop=False), STOP_BUDGET)
                else:
                    await asyncio.wait_for(self.engine.stop(), STOP_BUDGET)
            except TimeoutError:
                log.warning("the engine did not stop within %.1f s; exiting anyway", STOP_BUDGET)
            except Exception as exc:
                log.error("error while stopping: %s", exc)
        await self._stop_features()
        if self._control is not None:
            await self._control.close()
        if self.web is not None:
            await self.web.close()
        self.notifier.close()
        log.info("stopped")

    async def _stop_features(self) -> None:
        for feature in self.features:
            try:
                await feature.stop()
            except Exception:
                log.exception("feature %r failed to stop", feature)

    # --- state changes --------------------------------------------------------------

    def _on_event(self, event: events.Event) -> None:
        logs.log_event(event)
        if not isinstance(event, events.RealChanged):
            return
        detail = event.outcome.detail if event.outcome is not None else ""
        self.timeline.add(status.Transition(event.at, event.virtual.label, event.real.label,
                                            str(event.old), str(event.new), detail))
        if event.new is State.UNKNOWN:
            return
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
        started = time.monotonic()
        path = self.config.path
        issues: tuple[str, ...] = ()
        try:
            new = await asyncio.to_thread(self.loader, path)
        except ConfigError as exc:
            issues = tuple(str(issue) for issue in exc.issues) or (str(exc),)
            self.reload_error = list(issues)
            outcome = (f"reload failed: {len(issues)} errors in {path}; "
                       "still running the previous configuration")
            return self._reload_done(events.ReloadDone(path, False, self.config, issues, outcome,
                                                       time.monotonic() - started))
        except OSError as exc:
            self.reload_error = [f"{path}: {exc.strerror or exc}"]
            outcome = (f"reload failed: cannot read {path}: {exc.strerror or exc}; "
                       "still running the previous configuration")
            return self._reload_done(events.ReloadDone(path, False, self.config, (), outcome,
                                                       time.monotonic() - started))
        logs.MASKER.update(logs.config_secrets(new) + logs.config_secrets(self.config))
        try:
            await self.engine.reload(new)
        except Exception as exc:
            # Not the file's fault: say so, and keep serving with what the engine still has.
            self.reload_error = [f"{path}: the new configuration could not be applied: {exc}"]
            return self._reload_done(events.ReloadDone(path, False, self.config, (),
                                                       f"reload failed: {self.reload_error[0]}",
                                                       time.monotonic() - started))
        self.config = new
        logs.MASKER.update(logs.config_secrets(new))
        self.reload_error = []
        self.reloads += 1
        self.reloaded_at = time.time()
        return self._reload_done(events.ReloadDone(new.path, True, new, (),
                                                   f"reloaded {new.path}: {self._status_line()}",
                                                   time.monotonic() - started))

    def _reload_done(self, result: events.ReloadDone) -> bool:
        assert self.engine is not None
        if result.ok:
            self.config_mtime = _mtime(result.path)
        else:
            self.reload_failures += 1
        self.engine.events.emit(result)  # logged by our own observer, like every event
        # READY=1 ends systemd's "reloading" state; before the first round it would also end
        # start-up too early, so then only the status line changes.
        if self.ready.is_set():
            self.notifier.send(READY=1, STATUS=self._status_line())
        else:
            self.notifier.status(self._status_line())
        return result.ok

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
        # its output goes where ours goes (the journal under systemd), as with ldirectord
        result = await run_process(argv, CALLBACK_TIMEOUT, capture=False)
        if result.timed_out:
            log.error("callback %s did not finish within %.0f s and was killed", argv[0], CALLBACK_TIMEOUT)
        elif result.returncode is None:
            log.error("callback: %s", result.error)
        elif result.returncode != 0:
            log.warning("callback %s exited with status %d", argv[0], result.returncode)

    # --- status ------------------------------------------------------------------------

    def status_snapshot(self) -> dict[str, Any]:
        """What `healthd status --json` prints, built at once (tests, small tables)."""
        snapshot = self.engine.snapshot() if self.engine is not None else None
        return self._document(snapshot, as_json(snapshot) if snapshot is not None else {"virtuals": []})

    async def status_document(self) -> dict[str, Any]:
        """What `healthd status --json` prints and the status page shows, built in slices."""
        snapshot = await self.engine.snapshot_sliced() if self.engine is not None else None
        engine = await status.snapshot_dict(snapshot) if snapshot is not None else {"virtuals": []}
        return self._document(snapshot, engine)

    def _document(self, snapshot: Snapshot | None, engine: dict[str, Any]) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "config": self.config.path,
            "ipvs": self.ipvs_kind,
            "ready": self.ready.is_set(),
            "started": self.started_at,
            "reloaded": self.reloaded_at,
            "reload_errors": list(self.reload_error),
            "reloads": {"ok": self.reloads, "failed": self.reload_failures},
            "config_mtime": self.config_mtime,
            "http": self.web.url if self.web is not None else None,
            "summary": summary(snapshot) if snapshot is not None else "0/0 reals up in 0 virtual services",
            "execute": list(self.config.settings.execute),  # the children `status` lists after this one
            "transitions": self.timeline.as_list(),
            **engine,
        }


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def release_signals(loop: asyncio.AbstractEventLoop, signals: Sequence[int], *, ignore: bool) -> None:
    """Take the loop's handlers off `signals`; with `ignore`, ignore them from now on.

    Removing a loop handler restores the default action, which for SIGTERM kills the process; the
    signals stay blocked while the handlers change hands, and ignoring a pending signal discards it,
    so a stop request that arrives while the process exits cannot turn a clean exit into a kill.
    """
    if not ignore:
        for sig in signals:
            loop.remove_signal_handler(sig)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        for sig in signals:
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
