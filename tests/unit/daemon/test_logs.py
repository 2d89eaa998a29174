"""Log targets, the state-change record and its fields, and masking of secrets."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from healthd.checks.spec import CheckSpec, CheckType
from healthd.config.model import Config, Real, Virtual
from healthd.daemon import logs
from healthd.vocab import Forward, ServiceProtocol


@pytest.fixture(autouse=True)
def _reset_masker():
    yield
    logs.MASKER.update([])
    logger = logging.getLogger(logs.LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True  # configure() turned it off; other tests read records through caplog


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_choose_target_follows_ldirectord_and_systemd() -> None:
    assert logs.choose_target(True, "/var/log/ldirectord.log", False) == logs.LogTarget(stderr=True)
    assert logs.choose_target(False, "local0", False) == logs.LogTarget(logfile="local0")
    assert logs.choose_target(False, "/var/log/ldirectord.log", True) == logs.LogTarget(journal=True)
    # An explicit logfile is kept under systemd; -d adds no stderr copy (stderr is the journal there).
    assert logs.choose_target(True, "/var/log/lvs.log", True) == logs.LogTarget(
        journal=True, logfile="/var/log/lvs.log"
    )


def test_under_journald_needs_journal_stream_to_be_our_stderr(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(logs, "JOURNAL_SOCKET", str(tmp_path))  # journald's socket "exists"
    assert not logs.under_journald({})
    with open(tmp_path / "stream", "w") as stream:
        st = os.fstat(stream.fileno())
        ours = f"{st.st_dev}:{st.st_ino}"
        assert logs.under_journald({"JOURNAL_STREAM": ours}, stderr_fd=stream.fileno())
        # Inherited from a parent service, but our stderr is something else: not the journal.
        assert not logs.under_journald({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"},
                                       stderr_fd=stream.fileno())
        assert not logs.under_journald({"JOURNAL_STREAM": "junk"}, stderr_fd=stream.fileno())


def test_logfile_path_gets_lines(tmp_path: Path) -> None:
    path = tmp_path / "healthd.log"
    assert logs.configure(logs.LogTarget(logfile=str(path))) == []
    logs.state_change("10.0.0.1:80", "10.0.0.2:80", "negotiate http 10.0.0.2:80", False, "HTTP 500")
    text = path.read_text()
    assert "real server 10.0.0.2:80 of virtual service 10.0.0.1:80 went down" in text
    assert "HTTP 500" in text


def test_unwritable_logfile_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    problems = logs.configure(logs.LogTarget(logfile=str(tmp_path / "no" / "such" / "dir.log")))
    assert problems and "cannot open logfile" in problems[0]


def test_syslog_facility_is_accepted() -> None:
    assert "local0" in logs.SYSLOG_FACILITIES and "daemon" in logs.SYSLOG_FACILITIES
    assert logs.configure(logs.LogTarget(logfile="local3")) == []
    handler = logging.getLogger(logs.LOGGER).handlers[0]
    assert isinstance(handler, logging.handlers.SysLogHandler)
    assert handler.facility == logging.handlers.SysLogHandler.LOG_LOCAL3


def test_state_change_carries_journald_fields() -> None:
    logs.configure(logs.LogTarget(stderr=True))
    capture = Capture()
    capture.addFilter(logs.MASKER)
    logging.getLogger(logs.LOGGER).addHandler(capture)
    logs.state_change("10.0.0.1:80", "10.0.0.2:80", "negotiate http 10.0.0.2:80", True, "HTTP 200")
    (record,) = capture.records
    assert (record.VIRTUAL, record.REAL, record.CHECK, record.STATE) == (
        "10.0.0.1:80", "10.0.0.2:80", "negotiate http 10.0.0.2:80", "up"
    )
    assert record.getMessage().startswith("real server 10.0.0.2:80 of virtual service 10.0.0.1:80 is up")


def _config_with_secret(secret: str) -> Config:
    spec = CheckSpec(type=CheckType.NEGOTIATE, service="mysql", protocol=ServiceProtocol.TCP, family=4,
                     address="10.0.0.2", port=3306, login="monitor", passwd=secret)
    real = Real(address="10.0.0.2", port=3306, forward=Forward.GATE, weight=1, check=spec)
    virtual = Virtual(family=4, protocol=ServiceProtocol.TCP,
                      address="10.0.0.1", port=3306, fwmark=None, reals=(real,))
    return Config(path="/etc/ha.d/x.cf", virtuals=(virtual,))


def test_secrets_never_reach_a_handler(tmp_path: Path) -> None:
    config = _config_with_secret("s3cr3t-pw")
    logs.MASKER.update(logs.config_secrets(config))
    path = tmp_path / "out.log"
    logs.configure(logs.LogTarget(logfile=str(path)))
    capture = Capture()
    capture.addFilter(logs.MASKER)
    logging.getLogger(logs.LOGGER).addHandler(capture)
    logs.log.error("login failed for monitor with %s", "s3cr3t-pw")
    logs.state_change("10.0.0.1:3306", "10.0.0.2:3306", "mysql pw=s3cr3t-pw", False, "denied: s3cr3t-pw")
    text = path.read_text()
    assert "s3cr3t-pw" not in text and logs.MASK in text
    for record in capture.records:
        assert "s3cr3t-pw" not in record.getMessage()
        assert record.args is None  # JournalHandler would otherwise send the raw args as CODE_ARGS
    assert "s3cr3t-pw" not in capture.records[1].CHECK
    # The spec's repr (what a careless log line would print) hides the password too.
    assert "s3cr3t-pw" not in repr(config.virtuals[0].reals[0].check)
