"""Engine events become log records with journald fields (logs.log_event); start failures are clear."""

from __future__ import annotations

import json
import logging

import pytest

from healthd.checks.spec import Outcome
from healthd.config import parse_text
from healthd.daemon import logs, run
from healthd.daemon.wiring import build_engine
from healthd.engine import events
from healthd.engine.snapshot import as_json
from healthd.ipvs.backend import Unavailable
from healthd.ipvs.memory import MemoryTable
from healthd.vocab import State

CONFIG = """\
virtual=10.0.0.1:80
\treal=10.0.0.2:80 gate 2
\tservice=http
"""


@pytest.fixture
def config():
    return parse_text(CONFIG, "/etc/ha.d/test.cf")


def test_real_changes_become_state_change_records(config, caplog) -> None:
    virtual = config.virtuals[0]
    real = virtual.reals[0]
    caplog.set_level(logging.INFO, logger="healthd")
    outcome = Outcome(False, "connection refused", 0.001)
    logs.log_event(events.RealChanged(virtual, real, real.check, State.UNKNOWN, State.DOWN, outcome, 0.0))
    logs.log_event(events.RealChanged(virtual, real, real.check, State.DOWN, State.UP,
                                      Outcome(True, "HTTP 200", 0.001), 1.0))
    logs.log_event(events.RealChanged(virtual, real, real.check, State.UP, State.UNKNOWN, None, 2.0))
    records = [(r.getMessage(), r.VIRTUAL, r.REAL, r.CHECK, r.STATE) for r in caplog.records]
    assert records == [
        ("real server 10.0.0.2:80 of virtual service 10.0.0.1:80 is down "
         "(negotiate http 10.0.0.2:80 check: connection refused)",
         "10.0.0.1:80", "10.0.0.2:80", "negotiate http 10.0.0.2:80", "down"),
        ("real server 10.0.0.2:80 of virtual service 10.0.0.1:80 is up again "
         "(negotiate http 10.0.0.2:80 check: HTTP 200)",
         "10.0.0.1:80", "10.0.0.2:80", "negotiate http 10.0.0.2:80", "up"),
    ]


def test_other_events_are_logged(config, caplog) -> None:
    virtual = config.virtuals[0]
    caplog.set_level(logging.INFO, logger="healthd")
    logs.log_event(events.FallbackChanged(virtual, True))
    logs.log_event(events.SyncFailed("netlink: permission denied"))
    logs.log_event(events.Notice("maintenancedir /x is unreadable"))
    logs.log_event(events.CommandFinished(virtual, ("/bin/fb", "start"), 3, "", None))
    text = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("WARNING", "no real server of 10.0.0.1:80 is up: the fallback server takes the traffic") in text
    assert ("ERROR", "cannot update the IPVS table (will retry): netlink: permission denied") in text
    assert ("WARNING", "maintenancedir /x is unreadable") in text
    assert ("WARNING", "fallbackcommand /bin/fb start for 10.0.0.1:80 failed: exit status 3") in text
    assert caplog.records[0].VIRTUAL == "10.0.0.1:80"


def test_snapshot_is_plain_json(config) -> None:
    engine = build_engine(config, MemoryTable())
    snap = as_json(engine.snapshot())
    json.dumps(snap)
    assert snap["virtuals"][0]["reals"][0]["real"] == "10.0.0.2:80"
    assert snap["virtuals"][0]["reals"][0]["state"] == "unknown"


async def test_no_kernel_ipvs_is_a_clear_error_suggesting_memory(monkeypatch, caplog) -> None:
    async def unavailable(kind: str):
        raise Unavailable("the kernel has no IPVS (ip_vs module not loaded?)")

    monkeypatch.setattr("healthd.daemon.wiring.make_backend", unavailable)
    caplog.set_level(logging.INFO, logger="healthd")
    reports: list[str] = []
    config = parse_text(CONFIG, "/etc/ha.d/test.cf")
    code = await run._main(config, ipvs="netlink", notifier=run.Notifier({}), report=reports.append)
    assert code == 1
    assert reports == [
        "cannot open the netlink IPVS table: the kernel has no IPVS (ip_vs module not loaded?)"
    ]
    assert "start it with --ipvs memory" in caplog.text
