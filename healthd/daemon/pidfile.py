"""The pidfile /run/healthd.NAME.pid and what `status` concludes from it (exit 0, 1 or 3, as ldirectord).

NAME is the basename of the configuration file, so several healthd instances
(one per config) live side by side. $HEALTHD_RUNDIR moves the run files
(pidfile and control socket) elsewhere, for tests and unprivileged trials.
"""

from __future__ import annotations

import contextlib
import enum
import os
import time
from pathlib import Path


class Status(enum.IntEnum):
    """`status` exit codes, as ldirectord (and LSB) define them."""

    RUNNING = 0
    STALE = 1  # a pidfile names a process that is gone
    STOPPED = 3


def run_dir() -> Path:
    return Path(os.environ.get("HEALTHD_RUNDIR", "/run"))


def instance_name(config_path: str) -> str:
    return os.path.basename(config_path) or "ldirectord.cf"


def pidfile_path(config_path: str) -> Path:
    return run_dir() / f"healthd.{instance_name(config_path)}.pid"


def socket_path(config_path: str) -> Path:
    return run_dir() / f"healthd.{instance_name(config_path)}.sock"


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def status(path: Path) -> tuple[Status, int | None]:
    """What the pidfile says: (RUNNING, pid), (STALE, pid or None) or (STOPPED, None)."""
    pid = read_pid(path)
    if pid is None:
        return Status.STOPPED, None
    if pid and alive(pid):
        return Status.RUNNING, pid
    return Status.STALE, pid or None


class AlreadyRunning(Exception):
    def __init__(self, path: Path, pid: int) -> None:
        super().__init__(f"healthd is already running with pid {pid} (pidfile {path})")
        self.pid = pid


def acquire(path: Path, pid: int | None = None) -> None:
    """Write our pid; refuse when a live process holds the file, replace a stale one."""
    pid = os.getpid() if pid is None else pid
    state, other = status(path)
    if state is Status.RUNNING and other is not None and other != pid:
        raise AlreadyRunning(path, other)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{pid}")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)  # atomic: a reader never sees a half-written pid


def release(path: Path, pid: int | None = None) -> None:
    """Remove the pidfile if it is still ours."""
    pid = os.getpid() if pid is None else pid
    if read_pid(path) == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# A restart that must not touch the IPVS table (a package upgrade) creates this file, restarts healthd
# and removes it. While it exists, a stopping healthd leaves its services in the table (whatever
# cleanstop says) and the next one adopts them: no real leaves the table, no connection is cut.
# Older than KEEP_TABLE_MAX_AGE it is a leftover and ignored, so a crashed upgrade cannot turn
# cleanstop off for good.
KEEP_TABLE_MAX_AGE = 600.0


def keep_table_path() -> Path:
    return run_dir() / "healthd.keep-table"


def keep_table_requested(now: float | None = None) -> bool:
    try:
        mtime = keep_table_path().stat().st_mtime
    except OSError:
        return False
    return abs((time.time() if now is None else now) - mtime) <= KEEP_TABLE_MAX_AGE
