"""`healthd check-config` and the config lookup: exit codes, output, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from healthd import cli
from healthd.config import ConfigError, find_config
from healthd.config.cli import main

GOOD = "checktimeout=2\nvirtual=127.0.0.1:80\n\treal=127.0.0.2:80 masq 3\n\treceive=\"up\"\n"


def write(tmp_path: Path, text: str, name: str = "t.cf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_valid_file_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([write(tmp_path, GOOD)]) == 0
    out = capsys.readouterr().out
    assert "valid, 1 virtual service, 1 real server" in out
    assert "virtual 127.0.0.1:80 tcp, scheduler wrr" in out
    assert "real 127.0.0.2:80 masq, weight 3" in out
    assert "http GET http://127.0.0.2:80/, expect /up/; every 10s, timeout 2s" in out


def test_json_is_one_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", write(tmp_path, GOOD)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"global", "virtuals"}
    real = doc["virtuals"][0]["reals"][0]
    assert set(real["check"]) >= {"type", "service", "checkport", "request", "receive", "checktimeout",
                                  "negotiatetimeout", "checkinterval", "failurecount", "virtualhost",
                                  "httpmethod"}
    assert real["check"]["virtualhost"] is None and doc["virtuals"][0]["fallback"] is None


def test_secrets_are_not_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD + "\tpasswd=\"hunter2\"\n\tsecret=\"s3cret\"\n")
    assert main([path]) == 0 and main(["--json", path]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "s3cret" not in out and '"passwd_set": true' in out


def test_invalid_file_lists_every_problem_and_exits_1(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "timeout=1\nvirtual=127.0.0.1:80\n\treal=127.0.0.2:80 route\nbogus=1\n")
    assert main([path]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert [line.split(": ")[0] for line in lines[:3]] == [f"{path}:1", f"{path}:3", f"{path}:4"]
    assert lines[-1] == "healthd check-config: 3 problems found"


def test_missing_file_and_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.cf")]) == 1
    assert "configuration file not found" in capsys.readouterr().err
    assert main(["--frob"]) == 2
    assert main(["a", "b"]) == 2
    assert main(["--help"]) == 0


def test_the_healthd_command_dispatches_check_config(tmp_path: Path) -> None:
    assert cli.main(["check-config", write(tmp_path, GOOD)]) == 0


def test_no_traceback_from_the_real_command(tmp_path: Path) -> None:
    path = tmp_path / "junk.cf"
    path.write_bytes(b"\xff\xfe\x00virtual=\x00\n\treal=[\n" + b"x" * 100_000)
    run = subprocess.run([sys.executable, "-m", "healthd", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and f"{path}:1:" in run.stderr


def test_find_config_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ha, conf = tmp_path / "ha.d", tmp_path / "ha.d" / "conf"
    conf.mkdir(parents=True)
    (conf / "ldirectord.cf").write_text("")
    dirs = (str(ha), str(conf))
    assert find_config(None, dirs) == str(conf / "ldirectord.cf")
    (ha / "ldirectord.cf").write_text("")
    assert find_config(None, dirs) == str(ha / "ldirectord.cf")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local.cf").write_text("")
    assert find_config("local.cf", dirs) == "local.cf"
    with pytest.raises(ConfigError) as info:
        find_config("absent.cf", dirs)
    assert "configuration file not found" in str(info.value) and str(ha / "absent.cf") in str(info.value)
