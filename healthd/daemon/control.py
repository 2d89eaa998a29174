"""The control socket: a root-only unix socket from which `healthd status` reads the live state.

One request per connection: the client sends a command line ("status"), the
daemon answers one JSON document and closes. Access needs both the file
permission (0600, owned by the daemon's user) and a peer that is root or the
daemon's own user, checked with SO_PEERCRED.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from healthd.daemon.status import collection_paused, encode

log = logging.getLogger("healthd.control")

# The status document, at once or (for large tables) built in slices by a coroutine.
Snapshot = Callable[[], dict[str, Any] | Awaitable[dict[str, Any]]]
MAX_REQUEST = 256


def _peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class ControlServer:
    def __init__(self, path: Path, snapshot: Snapshot) -> None:
        self.path = path
        self.snapshot = snapshot
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a killed daemon
        old_umask = os.umask(0o077)  # no window in which the socket is world-accessible
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = _peer_uid(writer.get_extra_info("socket"))
            if uid not in (0, os.getuid()):
                writer.write(b'{"error": "permission denied: the control socket is for root"}\n')
                return
            line = await asyncio.wait_for(reader.readline(), timeout=2.0)
            command = line[:MAX_REQUEST].decode(errors="replace").strip() or "status"
            if command != "status":
                writer.write(json.dumps({"error": f"unknown command {command!r}"}).encode() + b"\n")
            else:
                with collection_paused():
                    reply = self.snapshot()
                    if inspect.isawaitable(reply):
                        reply = await reply
                    data = await encode(reply)
                writer.write(data)
            await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            log.debug("control client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class ControlUnavailable(Exception):
    pass


def query(path: Path, command: str = "status", timeout: float = 5.0) -> dict[str, Any]:
    """Ask a running daemon (blocking; used by the `healthd status` client)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except FileNotFoundError as exc:
        raise ControlUnavailable(f"no control socket at {path}: is healthd running?") from exc
    except PermissionError as exc:
        raise ControlUnavailable(f"permission denied on {path}: run `healthd status` as root") from exc
    except OSError as exc:
        raise ControlUnavailable(f"cannot talk to healthd at {path}: {exc.strerror or exc}") from exc
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise ControlUnavailable(f"healthd at {path} sent an unreadable answer") from exc
    if not isinstance(reply, dict):
        raise ControlUnavailable(f"healthd at {path} sent an unreadable answer")
    if "error" in reply:
        raise ControlUnavailable(str(reply["error"]))
    return reply
