"""The hanging-server scenario shared by every service: a silent server fails at the deadline
while a healthy check that runs at the same time is not held up by it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from healthd.checks.context import CheckContext
from healthd.checks.spec import CheckSpec, Outcome

Check = Callable[[CheckSpec, CheckContext], Awaitable[Outcome]]


async def assert_hang_bounded(check: Check, silent: CheckSpec, healthy: CheckSpec | None,
                              ctx: CheckContext) -> None:
    started = time.monotonic()
    jobs = [check(silent, ctx)] + ([check(healthy, ctx)] if healthy is not None else [])
    # The outer bound only keeps a broken module from hanging the test run;
    # the module itself must give up at its deadline.
    results = await asyncio.wait_for(asyncio.gather(*jobs), silent.deadline + 10)
    elapsed = time.monotonic() - started
    hung = results[0]
    assert not hung.ok, hung
    assert "timed out" in hung.detail, hung.detail
    assert silent.deadline - 0.2 <= hung.latency <= silent.deadline + 2.0, hung.latency
    assert elapsed <= silent.deadline + 2.0, elapsed
    if healthy is not None:
        good = results[1]
        assert good.ok, good
        # Had it waited behind the silent check it would have taken the whole deadline;
        # it finished before the silent one gave up.
        assert good.latency < silent.deadline, good.latency
