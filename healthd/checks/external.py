"""The external and external-perl checks: run `checkcommand VIP|fwmark VPORT RIP RPORT`, up on exit 0.

Differences from ldirectord, on purpose:
- No shell. `checkcommand` is split into words as a shell would split it (so
  `checkcommand="/usr/local/bin/check --quick"` keeps working) but no expansion,
  redirection or pipe happens; the four arguments (spec.command_args) follow as given.
- external-perl runs `perl SCRIPT ARGS...` in a separate process instead of inside the
  daemon's interpreter: the exit status has the same meaning.
- The command runs in its own session and process group, so that on the deadline the
  whole group (the command and anything it started) gets SIGTERM, then SIGKILL
  ctx.kill_grace seconds later if it is still there. The check's verdict does not wait
  for that: the runner answers at the deadline and the reaping continues in the background.
- stdin is /dev/null; stdout and stderr are read together, the first ctx.output_limit
  bytes kept for the detail and the rest drained and dropped, so a chatty command
  neither blocks on a full pipe nor fills memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal

from healthd.checks.context import CheckContext
from healthd.checks.spec import CheckSpec, CheckType, Outcome

_DRAIN_AFTER_EXIT = 0.2  # seconds to collect output still in the pipe once the command exited


def argv(spec: CheckSpec) -> list[str]:
    """The command line to execute; raises ValueError for an unusable checkcommand."""
    words = shlex.split(spec.command)
    if not words:
        raise ValueError("checkcommand is empty")
    if spec.type is CheckType.EXTERNAL_PERL:
        words = ["perl", *words]
    return [*words, *spec.command_args]


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        command = argv(spec)
    except ValueError as exc:
        return Outcome(False, f"checkcommand {spec.command!r} is unusable: {exc}", 0.0)
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
    except OSError as exc:
        return Outcome(False, f"cannot run {command[0]}: {(exc.strerror or str(exc)).lower()}",
                       loop.time() - started)
    kept = bytearray()
    reader = asyncio.ensure_future(_read_bounded(proc, kept, ctx.output_limit))
    try:
        status = await proc.wait()
        # a child left behind may hold the pipe open: the exit status decides, not the pipe's EOF
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DRAIN_AFTER_EXIT):
                await asyncio.shield(reader)
    except BaseException:
        reader.cancel()
        # the deadline (or shutdown) cancelled us: the group must not outlive the check
        ctx.spawn(_terminate(proc, ctx.kill_grace))
        raise
    finally:
        if not reader.done():
            reader.cancel()
    latency = loop.time() - started
    text = _first_line(bytes(kept))
    if status == 0:
        return Outcome(True, "exit status 0" + (f": {text}" if text else ""), latency)
    if status < 0:
        try:
            why = f"killed by signal {signal.Signals(-status).name}"
        except ValueError:
            why = f"killed by signal {-status}"
    else:
        why = f"exit status {status}"
    return Outcome(False, why + (f": {text}" if text else ""), latency)


async def _read_bounded(proc: asyncio.subprocess.Process, kept: bytearray, limit: int) -> None:
    """Read the command's output to its end, keeping the first `limit` bytes in `kept`."""
    assert proc.stdout is not None
    while True:
        chunk = await proc.stdout.read(65536)
        if not chunk:
            return
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]


async def _terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the command's process group, SIGKILL after `grace` seconds, then reap it."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(grace):
            await proc.wait()
    except TimeoutError:
        pass
    # the leader may be gone while others in its group still run: the group gets SIGKILL anyway
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _first_line(output: bytes, limit: int = 200) -> str:
    for line in output.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            return line[:limit]
    return ""
