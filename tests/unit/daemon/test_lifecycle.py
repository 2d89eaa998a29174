"""The daemon's lifecycle with a stand-in engine: READY after the first round, reload, autoreload, stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from healthd.checks.spec import Outcome
from healthd.config import load
from healthd.config.model import Config
from healthd.daemon.lifecycle import Daemon, FileWatch, summary
from healthd.daemon.systemd import Notifier
from healthd.engine import events
from healthd.engine.bus import EventBus
from healthd.engine.scheduler import SchedulerStats
from healthd.engine.snapshot import RealStatus, Snapshot, VirtualStatus
from healthd.vocab import State

GOOD = """\
checkinterval=1
autoreload={autoreload}
{callback}
virtual=127.0.0.1:80
\treal=127.0.0.2:80 gate 2
\treal=127.0.0.3:80 gate 2
\tservice=http
\trequest="ok.html"
\treceive="ok"
"""

BROKEN = """\
checkinterval=1
bogus_directive=1
virtual=127.0.0.1:80
\treal=127.0.0.2:80 gate two
\tservice=http
"""


def snapshot_of(states: list[list[State]], path: str = "test.cf") -> Snapshot:
    """A snapshot with one virtual per inner list, one real per state."""
    stats = SchedulerStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0)
    virtuals = tuple(
        VirtualStatus(f"10.0.0.{i}:80", f"TCP 10.0.0.{i}:80", True, False, None, tuple(
            RealStatus(f"10.0.1.{j}:80", "connect", state, 0.0, 1, False, 0, None, "", None, None)
            for j, state in enumerate(reals)))
        for i, reals in enumerate(states)
    )
    return Snapshot(0.0, path, True, None, stats, virtuals)


class FakeEngine:
    """Records what the daemon asks; every real is up once the first round is done."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.events = EventBus()
        self.first_round = asyncio.Event()
        self.reloads: list[Config] = []
        self.stopped = False

    async def start(self) -> None:
        asyncio.get_running_loop().call_later(0.05, self.first_round.set)

    async def reload(self, config: Config) -> None:
        self.reloads.append(config)
        self.config = config

    async def stop(self) -> None:
        self.stopped = True

    def snapshot(self) -> Snapshot:
        return snapshot_of([[State.UP] * len(v.reals) for v in self.config.virtuals], self.config.path)


@pytest.fixture
def notify(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    yield sock, Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    sock.close()


def messages(sock: socket.socket) -> list[dict[str, str]]:
    out = []
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return out
        out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))


def write(path: Path, autoreload: str = "no", callback: str = "") -> None:
    path.write_text(GOOD.format(autoreload=autoreload, callback=callback))


class Harness:
    def __init__(self, config_path: Path, notifier: Notifier, **kwargs: Any) -> None:
        self.engines: list[FakeEngine] = []

        def factory(config: Config) -> FakeEngine:
            engine = FakeEngine(config)
            self.engines.append(engine)
            return engine

        self.daemon = Daemon(load(str(config_path)), engine_factory=factory, loader=load,
                             notifier=notifier, **kwargs)
        self.task: asyncio.Task[int] | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.daemon.run())
        async with asyncio.timeout(5):
            await self.daemon.ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.daemon.request_stop()
        async with asyncio.timeout(5):
            assert await self.task == 0


async def wait_for(predicate) -> None:
    """Poll a condition the daemon has no event for, within 5 s."""
    async with asyncio.timeout(5.0):
        while not predicate():  # noqa: ASYNC110 - polling the object under test, bounded by the timeout
            await asyncio.sleep(0.02)


async def test_ready_after_first_round_then_stopping(tmp_path: Path, notify) -> None:
    sock, notifier = notify
    cfg = tmp_path / "web.cf"
    write(cfg)
    async with Harness(cfg, notifier) as h:
        assert messages(sock) == [{"READY": "1", "STATUS": "2/2 reals up in 1 virtual service"}]
        virtual = h.daemon.config.virtuals[0]
        real = virtual.reals[1]
        change = events.RealChanged(virtual, real, real.check, State.UP, State.DOWN,
                                    Outcome(False, "HTTP 500", 0.001), 0.0)
        for _ in range(50):  # a burst of changes: one STATUS
            h.engines[0].events.emit(change)
        await asyncio.sleep(0.3)
        assert messages(sock) == [{"STATUS": "2/2 reals up in 1 virtual service"}]
    assert h.engines[0].stopped
    assert messages(sock)[-1]["STOPPING"] == "1"


async def test_sighup_reloads_a_valid_file(tmp_path: Path, notify) -> None:
    sock, notifier = notify
    cfg = tmp_path / "web.cf"
    write(cfg)
    async with Harness(cfg, notifier) as h:
        messages(sock)
        cfg.write_text(GOOD.format(autoreload="no", callback="").replace("\treal=127.0.0.3:80 gate 2\n", ""))
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: h.daemon.reloads == 1)
        engine = h.engines[0]
        assert len(h.engines) == 1  # the same engine: state is kept across a reload
        assert [r.label for r in engine.reloads[0].virtuals[0].reals] == ["127.0.0.2:80"]
        sent = messages(sock)
        assert sent[0]["RELOADING"] == "1"
        assert sent[-1] == {"READY": "1", "STATUS": "1/1 reals up in 1 virtual service"}


async def test_broken_reload_keeps_the_old_config_and_logs_every_error(tmp_path, notify, caplog) -> None:
    sock, notifier = notify
    cfg = tmp_path / "web.cf"
    write(cfg)
    caplog.set_level(logging.INFO, logger="healthd")
    async with Harness(cfg, notifier) as h:
        messages(sock)
        before = h.daemon.config
        cfg.write_text(BROKEN)
        assert await h.daemon.reload() is False
        assert h.daemon.config is before
        assert h.engines[0].reloads == []
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(f"{cfg}:2:" in e and "bogus_directive" in e for e in errors)
        assert any(f"{cfg}:4:" in e for e in errors)
        assert "still running the previous configuration" in errors[-1]
        sent = messages(sock)
        assert sent[0]["RELOADING"] == "1"
        assert sent[-1]["READY"] == "1"
        assert "reload failed (2 errors), running the previous configuration" in sent[-1]["STATUS"]
        assert h.daemon.status_snapshot()["reload_errors"][0].startswith(f"{cfg}:2:")
        # Fixing the file clears the failure.
        write(cfg)
        assert await h.daemon.reload() is True
        assert messages(sock)[-1] == {"READY": "1", "STATUS": "2/2 reals up in 1 virtual service"}


async def test_autoreload_runs_the_callback_with_the_config_path(tmp_path: Path, notify) -> None:
    _sock, notifier = notify
    cfg = tmp_path / "web.cf"
    seen = tmp_path / "callback-args"
    script = tmp_path / "callback.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {seen}\n')
    script.chmod(0o755)
    write(cfg, autoreload="yes", callback=f'callback="{script}"')
    async with Harness(cfg, notifier, watch_interval=0.05) as h:
        await asyncio.sleep(0.2)
        assert h.daemon.reloads == 0  # nothing changed, nothing reloaded
        os.utime(cfg)  # touched, same content: not a change
        await asyncio.sleep(0.2)
        assert h.daemon.reloads == 0
        text = cfg.read_text().replace("gate 2", "gate 3")
        cfg.write_text(text)
        await wait_for(lambda: h.daemon.reloads == 1)
        assert seen.read_text().split() == [str(cfg)]
        assert h.daemon.config.virtuals[0].reals[0].weight == 3


async def test_autoreload_off_ignores_changes(tmp_path: Path, notify) -> None:
    _sock, notifier = notify
    cfg = tmp_path / "web.cf"
    write(cfg, autoreload="no")
    async with Harness(cfg, notifier, watch_interval=0.05) as h:
        cfg.write_text(cfg.read_text().replace("gate 2", "gate 3"))
        await asyncio.sleep(0.3)
        assert h.daemon.reloads == 0


def test_file_watch(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("a")
    watch = FileWatch(str(path))
    assert not watch.changed()
    path.write_text("b")
    assert watch.changed()
    assert not watch.changed()
    path.unlink()
    assert not watch.changed()  # briefly missing during an editor's save
    path.write_text("c")
    assert watch.changed()


def test_summary_wording() -> None:
    snap = snapshot_of([[State.UP, State.DOWN], [State.UP]])
    assert summary(snap) == "2/3 reals up in 2 virtual services"
    assert summary(snapshot_of([])) == "0/0 reals up in 0 virtual services"


async def test_an_engine_failure_during_reload_keeps_the_daemon_running(tmp_path: Path, notify) -> None:
    sock, notifier = notify
    cfg = tmp_path / "web.cf"
    write(cfg)
    async with Harness(cfg, notifier) as h:
        messages(sock)

        async def refuse(config: Config) -> None:
            raise RuntimeError("engine not running")

        h.engines[0].reload = refuse  # type: ignore[method-assign]
        before = h.daemon.config
        write(cfg, autoreload="yes")
        assert await h.daemon.reload() is False
        assert h.daemon.config is before
        assert "could not be applied: engine not running" in h.daemon.reload_error[0]
        assert "reload failed" in messages(sock)[-1]["STATUS"]
        h.engines[0].reload = FakeEngine.reload.__get__(h.engines[0])  # type: ignore[method-assign]
        assert await h.daemon.reload() is True  # the reload loop is still alive for the next one


async def test_a_reload_before_the_first_round_does_not_claim_readiness(tmp_path: Path, notify) -> None:
    sock, notifier = notify
    cfg = tmp_path / "web.cf"
    write(cfg)
    harness = Harness(cfg, notifier)
    task = asyncio.create_task(harness.daemon.run())
    await asyncio.sleep(0)  # run() has started; the first round (50 ms) is not done
    await asyncio.sleep(0.01)
    assert not harness.daemon.ready.is_set()
    assert await harness.daemon.reload() is True
    sent = messages(sock)
    assert all("READY" not in m for m in sent)
    async with asyncio.timeout(5):
        await harness.daemon.ready.wait()
    assert messages(sock)[-1]["READY"] == "1"
    harness.daemon.request_stop()
    assert await task == 0


class RecordingFeature:
    """A daemon feature as wiring.features() returns them: an observer of the engine's events."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.seen: list[events.Event] = []

    async def start(self, engine: FakeEngine) -> None:  # type: ignore[override]
        self.calls.append("start" if not engine.first_round.is_set() else "start after the first round")
        engine.events.subscribe(self.seen.append, events.ReloadDone)

    async def stop(self) -> None:
        self.calls.append("stop")


async def test_features_observe_the_engine_from_start_to_stop(tmp_path: Path, notify) -> None:
    _sock, notifier = notify
    cfg = tmp_path / "web.cf"
    write(cfg)
    feature = RecordingFeature()
    async with Harness(cfg, notifier, features=[feature]) as h:
        assert await h.daemon.reload() is True
        cfg.write_text(BROKEN)
        assert await h.daemon.reload() is False
    assert feature.calls == ["start", "stop"]
    assert [(e.ok, len(e.issues)) for e in feature.seen] == [(True, 0), (False, 2)]  # type: ignore[union-attr]
