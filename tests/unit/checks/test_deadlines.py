"""Slotted deadlines: fire within one slot of the deadline, never for runs already done."""

from __future__ import annotations

import asyncio

import pytest

from healthd.checks.deadlines import SLOT, Deadlines


async def test_overdue_task_is_cancelled_within_a_slot() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    task = asyncio.ensure_future(asyncio.sleep(10))
    when = loop.time() + 0.1
    entry = deadlines.add(loop, task, when)  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await task
    assert entry.expired
    assert when <= loop.time() < when + SLOT + 0.1  # the margin is for a busy machine


async def test_done_entries_are_left_alone_and_slots_are_freed() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    tasks = [asyncio.ensure_future(asyncio.sleep(0.2)) for _ in range(50)]
    entries = [deadlines.add(loop, t, loop.time() + 0.05) for t in tasks]  # type: ignore[arg-type]
    for e in entries[:25]:
        e.done = True
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is None for r in results[:25])
    assert all(isinstance(r, asyncio.CancelledError) for r in results[25:])
    assert len(deadlines) == 0
