"""execute= children: the command each runs, the environment it gets, and a file that names itself."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from healthd.daemon.instances import Instances, child_argv, child_env


def test_the_child_command_is_this_healthd_with_the_table_kind_only_for_start() -> None:
    assert child_argv("/etc/ha.d/b.cf", "start", "memory") == [
        sys.executable, "-m", "healthd", "--ipvs", "memory", "/etc/ha.d/b.cf", "start"]
    assert child_argv("b.cf", "reload", "memory") == [sys.executable, "-m", "healthd", "b.cf", "reload"]
    assert child_argv("b.cf", "stop", None) == [sys.executable, "-m", "healthd", "b.cf", "stop"]


def test_children_are_not_systemds_main_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("HEALTHD_RUNDIR", "/tmp/run")
    env = child_env()
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env
    assert env["HEALTHD_RUNDIR"] == "/tmp/run"


def test_a_file_that_names_itself_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    own, other = tmp_path / "a.cf", tmp_path / "b.cf"
    own.write_text("")
    other.write_text("")
    with caplog.at_level(logging.WARNING, logger="healthd"):
        children = Instances([str(own), str(other), str(other)], own_path=str(own), ipvs=None)
    assert children.names == (str(other),)
    assert "names this daemon's own file" in caplog.text
