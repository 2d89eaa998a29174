"""Runs a child process, bounded: no shell, its own process group, TERM then KILL, at most N bytes of output.

The one runner for every command healthd starts: fallbackcommand (engine.commands),
the external checks (checks.external), the autoreload callback (daemon.lifecycle) and
`modprobe ip_vs` (ipvs.netlink).
stdin is /dev/null; stdout and stderr are read together, the first `output_limit`
bytes kept and the rest drained and dropped, so a chatty command neither blocks on
a full pipe nor fills memory. A command still running at its timeout gets SIGTERM
on its whole group, then SIGKILL `kill_grace` seconds later; the event loop never
waits on a child beyond that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

OUTPUT_LIMIT = 4096  # bytes of output kept
DRAIN_AFTER_EXIT = 0.2  # seconds to collect output still in the pipe once the command exited

Reaper = Callable[[Coroutine[Any, Any, None]], object]


@dataclass(frozen=True, slots=True)
class ProcessResult:
    argv: tuple[str, ...]
    returncode: int | None  # negative: killed by that signal; None: could not start, or timed out
    output: str  # the first output_limit bytes of stdout+stderr, decoded leniently
    error: str | None  # why it could not start or finish; None when it ran to completion
    timed_out: bool = False


async def run_process(
    argv: Sequence[str],
    limit: float | None,
    *,
    kill_grace: float = 2.0,
    output_limit: int = OUTPUT_LIMIT,
    capture: bool = True,
    reap: Reaper | None = None,
) -> ProcessResult:
    """Run `argv` to completion or for `limit` seconds (None: until cancelled). Never raises for what it does.

    Cancelled from outside (a check's deadline, shutdown), the group is killed at once, or,
    with `reap` (a task spawner), sent TERM then KILL in the background.
    capture=False leaves stdout and stderr to the daemon's own (the journal under systemd).
    """
    pipe = asyncio.subprocess.PIPE if capture else None
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=pipe,
            stderr=asyncio.subprocess.STDOUT if capture else None, start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return ProcessResult(tuple(argv), None, "", f"cannot run {argv[0]}: {reason.lower()}")
    kept = bytearray()
    reader = asyncio.ensure_future(_read_bounded(proc, kept, output_limit)) if capture else None
    timed_out = False
    try:
        if limit is None:
            await proc.wait()
        else:
            try:
                await asyncio.wait_for(proc.wait(), limit)
            except TimeoutError:
                timed_out = True
                await terminate_group(proc, kill_grace)
    except BaseException:
        if reader is not None:
            reader.cancel()
        if reap is not None:
            reap(terminate_group(proc, kill_grace))
        else:
            signal_group(proc.pid, signal.SIGKILL)
        raise
    if reader is not None:
        # a child left behind may hold the pipe open: the exit decides, not the pipe's EOF
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), DRAIN_AFTER_EXIT)
        reader.cancel()
    output = kept.decode(errors="replace")
    if timed_out:
        return ProcessResult(tuple(argv), None, output, f"still running after {limit:g} s: terminated", True)
    return ProcessResult(tuple(argv), proc.returncode, output, None)


async def _read_bounded(proc: asyncio.subprocess.Process, kept: bytearray, limit: int) -> None:
    """Read the command's output to its end, keeping the first `limit` bytes in `kept`."""
    assert proc.stdout is not None
    while chunk := await proc.stdout.read(65536):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]


async def terminate_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the process group, SIGKILL after `grace` seconds, then reap the leader."""
    signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace)
    # the leader may be gone while others in its group still run: the group gets SIGKILL anyway
    signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await proc.wait()


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
