"""The ping check: up when the real answers an ICMP echo, with `checkcount` attempts.

The attempts share the check's deadline (checktimeout): each waits an equal part
of 90% of it for its reply (the rest is kept back so that the last attempt, not the
runner's deadline, reports the silence), and the first reply ends the check.
"""

from __future__ import annotations

import asyncio

from healthd.checks.context import CheckContext
from healthd.checks.spec import CheckSpec, Outcome


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempts = max(1, spec.checkcount)
    wait = spec.checktimeout * 0.9 / attempts
    for attempt in range(1, attempts + 1):
        try:
            answered = await ctx.pinger.echo(spec.family, spec.address, wait)
        except PermissionError:
            return Outcome(False, "ping needs root or CAP_NET_RAW", loop.time() - started)
        except OSError as exc:
            return Outcome(False, f"ping failed: {(exc.strerror or str(exc)).lower()}", loop.time() - started)
        if answered:
            latency = loop.time() - started
            return Outcome(True, f"echo reply (attempt {attempt} of {attempts})", latency)
    word = "attempt" if attempts == 1 else "attempts"
    return Outcome(False, f"no echo reply to {attempts} {word}", loop.time() - started)
