"""`execute=FILE`: one more healthd per named file, started, reloaded and stopped with this one.

Each file runs as its own healthd process (`healthd FILE start`), with its own
pidfile /run/healthd.FILE.pid, control socket, log and IPVS services: a broken
or reloading file never touches another's table or checks. This daemon runs the
same verbs ldirectord's `ld_cmd_children` runs: `start` once it is up itself,
`stop` as it stops, and on reload `stop` for files that left, `reload` (else
`start`) for files that stayed and `start` for new ones. A child is a detached
daemon, even under systemd (it does not inherit NOTIFY_SOCKET), and lives in the
same cgroup, so `systemctl stop` reaches it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

log = logging.getLogger("healthd")

COMMAND_TIMEOUT = 75.0  # seconds a child's `start` may take (it waits up to 60 s for its daemon)
_SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                 "LISTEN_FDNAMES")


def child_argv(name: str, verb: str, ipvs: str | None = None) -> list[str]:
    """`healthd [--ipvs KIND] NAME VERB` with this interpreter (the same installation as the parent)."""
    option = ["--ipvs", ipvs] if ipvs and verb in ("start", "restart", "try-restart") else []
    return [sys.executable, "-m", "healthd", *option, name, verb]


def child_env() -> dict[str, str]:
    """The parent's environment without what makes a process systemd's main process."""
    return {k: v for k, v in os.environ.items() if k not in _SYSTEMD_VARS}


class Instances:
    """The `execute=` children of one daemon."""

    def __init__(self, names: Sequence[str], *, own_path: str, ipvs: str | None) -> None:
        self.own_path = os.path.realpath(own_path)
        self.ipvs = ipvs
        self.names = self._usable(names)

    def _usable(self, names: Sequence[str]) -> tuple[str, ...]:
        from healthd.config import ConfigError, find_config

        kept = []
        for name in dict.fromkeys(names):
            with contextlib.suppress(ConfigError):
                if os.path.realpath(find_config(name)) == self.own_path:
                    log.warning("execute=%s names this daemon's own file; ignored", name)
                    continue
            kept.append(name)
        return tuple(kept)

    async def start(self) -> None:
        await self._all("start", self.names)

    async def stop(self) -> None:
        await self._all("stop", self.names)

    async def reload(self, names: Sequence[str]) -> None:
        """The file was reloaded: bring the children in line with its `execute=` lines."""
        new = self._usable(names)
        gone = [n for n in self.names if n not in new]
        kept = [n for n in new if n in self.names]
        added = [n for n in new if n not in self.names]
        self.names = new
        await self._all("stop", gone)
        await asyncio.gather(*(self._reload_or_start(n) for n in kept))
        await self._all("start", added)

    async def _reload_or_start(self, name: str) -> None:
        if await self.run(name, "reload", quiet=True) != 0:
            await self.run(name, "start")

    async def _all(self, verb: str, names: Sequence[str]) -> None:
        await asyncio.gather(*(self.run(n, verb) for n in names))

    async def run(self, name: str, verb: str, quiet: bool = False) -> int:
        """`healthd NAME VERB`, bounded; its exit status (-1 when it could not run or was killed)."""
        argv = child_argv(name, verb, self.ipvs)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=child_env(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            log.error("execute=%s: cannot run healthd %s: %s", name, verb, exc.strerror or exc)
            return -1
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                out, _ = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            log.error("execute=%s: healthd %s did not finish within %.0f s", name, verb, COMMAND_TIMEOUT)
            return -1
        said = " ".join(out.decode(errors="replace").split())[:500]
        code = proc.returncode if proc.returncode is not None else -1
        if code == 0:
            log.info("execute=%s: %s: %s", name, verb, said or "done")
        elif not quiet:
            log.error("execute=%s: healthd %s failed (status %d): %s", name, verb, code, said)
        return code
