"""sd_notify through a real datagram socket: the messages systemd would read."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from healthd.daemon.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, str(path)
    sock.close()


def fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().split("\n"))


def test_ready_reloading_stopping_status(notify_socket) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("2/2 reals up in 1 virtual service")
    assert fields(sock.recv(4096)) == {"READY": "1", "STATUS": "2/2 reals up in 1 virtual service"}
    assert notifier.reloading()
    msg = fields(sock.recv(4096))
    assert msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0
    assert notifier.status("1/2 reals up\nin 1 virtual service")
    assert fields(sock.recv(4096)) == {"STATUS": "1/2 reals up in 1 virtual service"}
    assert notifier.stopping()
    assert fields(sock.recv(4096))["STOPPING"] == "1"
    notifier.close()


def test_abstract_socket_address() -> None:
    name = f"healthd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert notifier.watchdog_period is None


def test_gone_socket_is_reported_not_raised(tmp_path: Path, caplog) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent")})
    assert notifier.ready("x") is False
    assert "could not notify systemd" in caplog.text


def test_watchdog_period_is_half_of_watchdog_usec(notify_socket) -> None:
    _sock, path = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(env).watchdog_period == pytest.approx(1.5)
    # A watchdog meant for another process (our parent) is not ours to feed.
    assert Notifier({**env, "WATCHDOG_PID": "1"}).watchdog_period is None
    assert Notifier({**env, "WATCHDOG_USEC": "junk"}).watchdog_period is None


async def test_watchdog_pings_from_the_event_loop(notify_socket) -> None:
    sock, path = notify_socket
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # ping every 50 ms
    task = asyncio.create_task(notifier.run_watchdog())
    loop = asyncio.get_running_loop()
    pings = []
    try:
        async with asyncio.timeout(5):
            while len(pings) < 3:
                pings.append(await loop.sock_recv(sock, 4096))
    finally:
        task.cancel()
    assert pings == [b"WATCHDOG=1"] * 3


async def test_a_stuck_loop_stops_the_watchdog(notify_socket) -> None:
    """The pings come from the loop itself: while the loop is blocked, none are sent."""
    import time

    sock, path = notify_socket
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})  # every 20 ms
    task = asyncio.create_task(notifier.run_watchdog())
    await asyncio.sleep(0.1)
    _drain(sock)
    time.sleep(0.3)  # noqa: ASYNC251 - the point: the loop is stuck, so nobody pings
    stuck = _drain(sock)
    await asyncio.sleep(0.1)
    task.cancel()
    resumed = _drain(sock)
    # At most the one ping scheduled just before the block may have landed.
    assert stuck <= 1
    assert resumed >= 2


def _drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(4096)
        except BlockingIOError:
            return count
        count += 1
