"""The control socket: 0600, one JSON answer per connection, clear errors for the client."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from healthd.daemon import control


async def test_status_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "healthd.x.sock"
    server = control.ControlServer(path, lambda: {"summary": "1/2 reals up", "virtuals": []})
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        reply = await asyncio.to_thread(control.query, path)
        assert reply == {"summary": "1/2 reals up", "virtuals": []}
        with pytest.raises(control.ControlUnavailable, match="unknown command"):
            await asyncio.to_thread(control.query, path, "shutdown")
    finally:
        await server.close()
    assert not path.exists()


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(control.ControlUnavailable, match="is healthd running"):
        control.query(tmp_path / "absent.sock")


async def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "healthd.x.sock"
    path.write_text("left over")
    server = control.ControlServer(path, lambda: {"ok": True})
    await server.start()
    try:
        assert await asyncio.to_thread(control.query, path) == {"ok": True}
    finally:
        await server.close()
