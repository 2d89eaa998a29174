"""Deadlines for thousands of check runs at once: one timer per 10 ms slot instead of one per run.

asyncio.timeout() costs a TimerHandle and a push onto the loop's heap (ordered by
Python-level comparisons) per run; most checks finish long before their deadline,
so at 10,000 runs a second the heap fills with cancelled timers. Here a run is put
in the slot its deadline falls in, and one timer per occupied slot expires the runs
still going when the slot comes due. A deadline may thus fire up to one slot late.
A run is a task (cancelled when it expires, Deadline) or any object with a `done`
flag and an `expire()` method (healthd.checks.httpfast's task-free runs).
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

SLOT = 0.01  # seconds: the precision of a deadline


class Expiring(Protocol):
    """What a slot holds: `done` set by the run when it finished, `expire()` called if not."""

    done: bool

    def expire(self) -> None: ...


class Deadline:
    """One task's deadline: `expired` is set when it fired and cancelled the task."""

    __slots__ = ("done", "expired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.done = False
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        self.task.cancel()


class Deadlines:
    """Cancels each registered task when its deadline passes, unless it is marked done first."""

    def __init__(self) -> None:
        self._slots: dict[int, list[Expiring]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object], when: float) -> Deadline:
        """Cancel `task` at loop time `when` (or up to SLOT later) unless the entry is done by then."""
        entry = Deadline(task)
        self.watch(loop, entry, when)
        return entry

    def watch(self, loop: asyncio.AbstractEventLoop, entry: Expiring, when: float) -> None:
        """Call entry.expire() at loop time `when` (or up to SLOT later) unless entry.done by then."""
        slot = math.ceil(when / SLOT)
        entries = self._slots.get(slot)
        if entries is None:
            self._slots[slot] = [entry]
            loop.call_at(slot * SLOT, self._fire, slot)
        else:
            entries.append(entry)

    def _fire(self, slot: int) -> None:
        for entry in self._slots.pop(slot, ()):
            if not entry.done:
                entry.expire()

    def __len__(self) -> int:
        """Runs still registered (done or not) whose slot has not come yet."""
        return sum(len(v) for v in self._slots.values())
