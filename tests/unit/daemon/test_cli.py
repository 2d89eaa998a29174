"""The command line: ldirectord's forms, healthd's additions, and clear usage errors."""

from __future__ import annotations

import pytest

from healthd import cli


@pytest.mark.parametrize(
    ("argv", "verb", "config", "debug", "ipvs", "as_json"),
    [
        (["start"], "start", "ldirectord.cf", False, "netlink", False),
        (["-d", "web.cf", "start"], "start", "web.cf", True, "netlink", False),
        (["--debug", "--", "web.cf", "reload"], "reload", "web.cf", True, "netlink", False),
        (["-d", "--ipvs", "memory", "/tmp/x.cf", "start"], "start", "/tmp/x.cf", True, "memory", False),
        (["--ipvs=netlink", "restart"], "restart", "ldirectord.cf", False, "netlink", False),
        (["web.cf", "force-reload"], "force-reload", "web.cf", False, "netlink", False),
        (["web.cf", "try-restart"], "try-restart", "web.cf", False, "netlink", False),
        (["status"], "status", "ldirectord.cf", False, "netlink", False),
        (["status", "--json", "web.cf"], "status", "web.cf", False, "netlink", True),
        (["--json", "web.cf", "status"], "status", "web.cf", False, "netlink", True),
        (["--", "-odd-name.cf", "stop"], "stop", "-odd-name.cf", False, "netlink", False),
    ],
)
def test_forms(argv, verb, config, debug, ipvs, as_json) -> None:
    assert cli.parse(argv) == cli.Args(verb=verb, config=config, debug=debug, ipvs=ipvs, json=as_json)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no command"),
        (["web.cf"], "expected [CONFIG]"),
        (["web.cf", "launch"], "expected [CONFIG]"),
        (["--ipvs", "kernel", "start"], "use netlink"),
        (["--ipvs"], "needs a value"),
        (["--json", "start"], "--json goes with status"),
        (["--ipvs", "memory", "stop"], "--ipvs goes with start"),
        (["-x", "start"], "unknown option -x"),
    ],
)
def test_usage_errors(argv, message) -> None:
    with pytest.raises(cli.UsageError, match=message.replace("[", r"\[")):
        cli.parse(argv)


def test_main_prints_usage_on_error_and_exits_2(capsys) -> None:
    assert cli.main(["bogus.cf", "launch"]) == 2
    err = capsys.readouterr().err
    assert "healthd: expected" in err and "usage: healthd" in err
    assert "Traceback" not in err


def test_help_and_version(capsys) -> None:
    assert cli.main(["-h"]) == 0
    assert "start|stop|restart|try-restart|reload|force-reload|status" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("healthd ")


def test_status_of_a_stopped_instance_exits_3(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("HEALTHD_RUNDIR", str(tmp_path))
    assert cli.main(["/nonexistent/web.cf", "status"]) == 3
    assert "is stopped" in capsys.readouterr().out
    (tmp_path / "healthd.web.cf.pid").write_text("999999999\n")
    assert cli.main(["/nonexistent/web.cf", "status"]) == 1
    # the words ocf:heartbeat:ldirectord greps for to call a stale pidfile "not running"
    assert f"ldirectord stale pid file {tmp_path}/healthd.web.cf.pid for /nonexistent/web.cf" in \
        capsys.readouterr().err
    assert cli.main(["status", "--json", "/nonexistent/web.cf"]) == 1
    assert "stale pidfile" in capsys.readouterr().err


def test_stop_and_reload_of_a_stopped_instance(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("HEALTHD_RUNDIR", str(tmp_path))
    assert cli.main(["/nonexistent/web.cf", "stop"]) == 0
    assert cli.main(["/nonexistent/web.cf", "reload"]) == 7
    assert "not running" in capsys.readouterr().err


def test_check_config_is_delegated(tmp_path, capsys) -> None:
    good = tmp_path / "good.cf"
    good.write_text("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 2\n\tservice=http\n")
    bad = tmp_path / "bad.cf"
    bad.write_text("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate heavy\n\tbogus=1\n")
    assert cli.main(["check-config", str(good)]) == 0
    assert "10.0.0.2" in capsys.readouterr().out
    assert cli.main(["check-config", str(bad)]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert f"{bad}:2:" in text and f"{bad}:3:" in text


def test_status_table_for_people() -> None:
    live = {
        "summary": "1/2 reals up in 1 virtual service", "ipvs": "netlink", "reload_errors": ["x.cf:3: bad"],
        "virtuals": [{"virtual": "10.0.0.1:80", "service": "TCP 10.0.0.1:80", "fallback_active": False,
                      "reals": [
                          {"real": "10.0.0.2:80", "state": "up", "weight": 2, "since": 1.0e9,
                           "consecutive_failures": 0, "last_detail": "HTTP 200, body matched",
                           "last_latency": 0.0042, "maintenance": False},
                          {"real": "10.0.0.3:80", "state": "down", "weight": None, "since": 1.0e9,
                           "consecutive_failures": 4, "last_detail": "connection refused",
                           "last_latency": None, "maintenance": False},
                      ]}],
    }
    lines = cli.format_status(live).splitlines()
    assert lines[0] == "1/2 reals up in 1 virtual service (IPVS table: netlink)"
    assert lines[1] == "  last reload failed: x.cf:3: bad"
    assert lines[2] == "  TCP 10.0.0.1:80"
    assert "up" in lines[3] and "weight 2" in lines[3] and "(4.2 ms)" in lines[3]
    assert "down" in lines[4] and "not in table" in lines[4] and "4 failures" in lines[4]
    assert "connection refused" in lines[4]
