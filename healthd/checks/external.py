"""The external and external-perl checks: run `checkcommand VIP|fwmark VPORT RIP RPORT`, up on exit 0.

Differences from ldirectord, on purpose:
- No shell. `checkcommand` is split into words as a shell would split it (so
  `checkcommand="/usr/local/bin/check --quick"` keeps working) but no expansion,
  redirection or pipe happens; the four arguments (spec.command_args) follow as given.
- external-perl runs `perl SCRIPT ARGS...` in a separate process instead of inside the
  daemon's interpreter: the exit status has the same meaning.
- The command runs through healthd.process.run_process: its own process group, so that
  on the deadline the whole group (the command and anything it started) gets SIGTERM,
  then SIGKILL ctx.kill_grace seconds later. The check's verdict does not wait for that:
  the runner answers at the deadline and the reaping continues in the background.
- stdin is /dev/null; the first ctx.output_limit bytes of output give the detail.
"""

from __future__ import annotations

import asyncio
import shlex
import signal

from healthd.checks.context import CheckContext
from healthd.checks.spec import CheckSpec, CheckType, Outcome
from healthd.process import run_process


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
    result = await run_process(command, None, kill_grace=ctx.kill_grace, output_limit=ctx.output_limit,
                               reap=ctx.spawn)  # the check's deadline cancels it: TERM, KILL behind
    if result.returncode is None:
        return Outcome(False, result.error or "did not run", loop.time() - started)
    status = result.returncode
    latency = loop.time() - started
    text = _first_line(result.output)
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


def _first_line(output: str, limit: int = 200) -> str:
    for line in output.splitlines():
        line = line.strip()
        if line:
            return line[:limit]
    return ""
