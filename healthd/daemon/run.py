"""`healthd CONFIG start`: validate the config, detach unless told not to, then run the daemon until stopped.

healthd stays in the foreground with -d, under systemd ($NOTIFY_SOCKET set, so
that Type=notify sees the main process) and with `supervised=yes`; otherwise it
detaches as ldirectord does, and the parent returns only once the daemon is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import Callable

from healthd.config.model import Config, ConfigError
from healthd.daemon import logs, pidfile
from healthd.daemon.lifecycle import Daemon
from healthd.daemon.systemd import Notifier

EXIT_CONFIG = 2
DETACH_WAIT = 60.0  # seconds the parent waits for the detached daemon to report


def load_config(path: str) -> Config:
    from healthd.config import load

    return load(path)


def start(path: str, *, debug: bool, ipvs: str, http: tuple[str, int] | None = None) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues or [exc]:
            print(issue, file=sys.stderr)
        print(f"healthd: {path} is invalid; not started", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"healthd: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    pid_path = pidfile.pidfile_path(config.path)
    state, pid = pidfile.status(pid_path)
    if state is pidfile.Status.RUNNING:
        print(f"healthd for {config.path} is already running with pid {pid}")
        return 0
    notifier = Notifier()
    foreground = debug or notifier.enabled or config.settings.supervised
    target = logs.choose_target(debug, config.settings.logfile, logs.under_journald())
    # Logging is set up before detaching, so that a logfile problem still reaches the terminal.
    for problem in logs.configure(target, verbose=debug):
        print(f"healthd: {problem}", file=sys.stderr)
    if foreground:
        return _serve(config, ipvs=ipvs, notifier=notifier, http=http)
    return _detach(lambda report: _serve(config, ipvs=ipvs, notifier=notifier, report=report, http=http))


def _serve(
    config: Config, *, ipvs: str, notifier: Notifier, report: Callable[[str], None] | None = None,
    http: tuple[str, int] | None = None,
) -> int:
    return asyncio.run(_main(config, ipvs=ipvs, notifier=notifier, report=report, http=http))


async def _main(
    config: Config, *, ipvs: str, notifier: Notifier, report: Callable[[str], None] | None,
    http: tuple[str, int] | None = None,
) -> int:
    from healthd import threads
    from healthd.daemon.wiring import build_engine, features, make_backend
    from healthd.ipvs.backend import IPVSError

    # asyncio.to_thread's workers too leave the stop signals to the main thread (healthd.threads)
    asyncio.get_running_loop().set_default_executor(threads.pool(None, "healthd"))

    try:
        backend = await make_backend(ipvs)
    except (IPVSError, OSError) as exc:
        message = f"cannot open the {ipvs} IPVS table: {exc}"
        logs.log.error("%s", message)
        if ipvs == "netlink":
            logs.log.error("to try healthd without kernel IPVS, start it with --ipvs memory")
        if report:
            report(message)
        notifier.stopping(message)
        return 1
    pid_path = pidfile.pidfile_path(config.path)
    try:
        pidfile.acquire(pid_path)
    except (pidfile.AlreadyRunning, OSError) as exc:
        logs.log.error("%s", exc)
        if report:
            report(str(exc))
        await backend.close()
        return 1
    daemon = Daemon(
        config,
        engine_factory=functools.partial(build_engine, backend=backend),
        loader=load_config,
        notifier=notifier,
        control_path=pidfile.socket_path(config.path),
        ipvs_kind=ipvs,
        on_started=(lambda: report("ok")) if report else None,
        features=features(config, ipvs=ipvs),
        http=http,
        owns_process=True,
    )
    try:
        return await daemon.run()
    finally:
        await backend.close()
        pidfile.release(pid_path)


def _detach(serve: Callable[[Callable[[str], None]], int]) -> int:
    """Double fork; the parent returns 0 once the daemon says "ok", else prints what went wrong."""
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        return _wait_for_child(read_end)
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    reported = False

    def report(message: str) -> None:
        nonlocal reported
        if not reported:
            reported = True
            with contextlib.suppress(OSError):
                os.write(write_end, message.encode()[:4000])
                os.close(write_end)

    code = 1
    try:
        code = serve(report)
    finally:
        report(f"exited with status {code}")
        os._exit(code)


def _wait_for_child(fd: int) -> int:
    import select

    ready, _, _ = select.select([fd], [], [], DETACH_WAIT)
    message = os.read(fd, 4096).decode(errors="replace") if ready else ""
    os.close(fd)
    if message == "ok":
        return 0
    print(f"healthd: did not start: {message or 'no word from the daemon'}", file=sys.stderr)
    return 1


__all__ = ["load_config", "start"]
