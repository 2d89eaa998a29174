"""Deadlines for thousands of check runs at once: one timer per 10 ms slot instead of one per run.

asyncio.timeout() costs a TimerHandle and a push onto the loop's heap (ordered by
Python-level comparisons) per run; most checks finish long before their deadline,
so at 10,000 runs a second the heap fills with cancelled timers. Here a run is put
in the slot its deadline falls in, and one timer per occupied slot cancels the runs
still going when the slot comes due. A deadline may thus fire up to one slot late.
"""

from __future__ import annotations

import asyncio
import math

SLOT = 0.01  # seconds: the precision of a deadline


class Deadline:
    """One run's deadline: `expired` is set when it fired and cancelled the run's task."""

    __slots__ = ("done", "expired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.done = False
        self.expired = False


class Deadlines:
    """Cancels each registered task when its deadline passes, unless it is marked done first."""

    def __init__(self) -> None:
        self._slots: dict[int, list[Deadline]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object], when: float) -> Deadline:
        """Cancel `task` at loop time `when` (or up to SLOT later) unless the entry is done by then."""
        entry = Deadline(task)
        slot = math.ceil(when / SLOT)
        entries = self._slots.get(slot)
        if entries is None:
            self._slots[slot] = [entry]
            loop.call_at(slot * SLOT, self._fire, slot)
        else:
            entries.append(entry)
        return entry

    def _fire(self, slot: int) -> None:
        for entry in self._slots.pop(slot, ()):
            if not entry.done:
                entry.expired = True
                entry.task.cancel()

    def __len__(self) -> int:
        """Runs still registered (done or not) whose slot has not come yet."""
        return sum(len(v) for v in self._slots.values())
