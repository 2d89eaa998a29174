"""The pidfile and the status exit codes 0 running, 1 stale, 3 stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from healthd.daemon import pidfile


def test_paths_follow_the_config_name(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HEALTHD_RUNDIR", raising=False)
    assert pidfile.pidfile_path("/etc/ha.d/ldirectord.cf") == Path("/run/healthd.ldirectord.cf.pid")
    monkeypatch.setenv("HEALTHD_RUNDIR", str(tmp_path))
    assert pidfile.socket_path("web.cf") == tmp_path / "healthd.web.cf.sock"


def test_running_stale_stopped(tmp_path: Path) -> None:
    path = tmp_path / "healthd.x.pid"
    assert pidfile.status(path) == (pidfile.Status.STOPPED, None)
    pidfile.acquire(path)
    assert pidfile.status(path) == (pidfile.Status.RUNNING, os.getpid())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(f"{dead.pid}\n")
    assert pidfile.status(path) == (pidfile.Status.STALE, dead.pid)
    path.write_text("garbage")
    assert pidfile.status(path)[0] is pidfile.Status.STALE
    assert [int(s) for s in pidfile.Status] == [0, 1, 3]


def test_acquire_refuses_a_live_owner_and_replaces_a_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "healthd.x.pid"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        path.write_text(f"{sleeper.pid}\n")
        with pytest.raises(pidfile.AlreadyRunning, match=str(sleeper.pid)):
            pidfile.acquire(path)
    finally:
        sleeper.kill()
        sleeper.wait()
    pidfile.acquire(path)  # now stale: taken over
    assert pidfile.read_pid(path) == os.getpid()


def test_release_removes_only_our_own(tmp_path: Path) -> None:
    path = tmp_path / "healthd.x.pid"
    path.write_text("1\n")
    pidfile.release(path)
    assert path.exists()
    path.unlink()
    pidfile.acquire(path, pid=os.getpid())
    pidfile.release(path)
    assert not path.exists()
