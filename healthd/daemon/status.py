"""The status document (`healthd status --json`, the page's `/status.json`) and its parts, built in slices.

One document serves the control socket and the HTTP server, so the two can never
disagree. At 10,000 reals `dataclasses.asdict` plus one `json.dumps` stalled the event
loop for over half a second; here the snapshot is turned into plain values and
encoded a slice of reals at a time, with a pause for the loop between slices.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from healthd.engine.scheduler import SchedulerStats
from healthd.engine.snapshot import SLICE, RealStatus, Snapshot, VirtualStatus

TIMELINE = 50  # transitions kept for the page's timeline

_REAL_FIELDS = RealStatus.__slots__
_VIRTUAL_FIELDS = tuple(f for f in VirtualStatus.__slots__ if f != "reals")
_SCHEDULER_FIELDS = SchedulerStats.__slots__


_pauses = 0
_was_enabled = False


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while a document is built (nests; other tasks run meanwhile).

    A build allocates a few objects per real, and a collection that falls in the middle of it walks
    them all: at 10,000 reals one generation-2 pass held the loop for 70-120 ms. What a build
    allocates is freed by reference counting (no cycles), so collection can wait until it ends.
    """
    global _pauses, _was_enabled
    if _pauses == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _pauses += 1
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0 and _was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class Transition:
    """One entry of the timeline: a real's check changed state."""

    at: float  # wall clock
    virtual: str  # Virtual.label, as in the journal's VIRTUAL=
    real: str  # Real.label, as in REAL=
    old: str  # up | down | unknown
    new: str
    detail: str  # the verdict that caused it

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


class Timeline:
    """The last TIMELINE transitions, newest first."""

    def __init__(self, size: int = TIMELINE) -> None:
        self._items: deque[Transition] = deque(maxlen=size)

    def add(self, transition: Transition) -> None:
        self._items.appendleft(transition)

    def as_list(self) -> list[dict[str, Any]]:
        return [t.as_dict() for t in self._items]


async def snapshot_dict(snap: Snapshot) -> dict[str, Any]:
    """The engine's snapshot as plain JSON values (the shape `dataclasses.asdict` gives), in slices."""
    virtuals = []
    budget = SLICE
    for virtual in snap.virtuals:
        item = {f: getattr(virtual, f) for f in _VIRTUAL_FIELDS}
        reals = []
        for real in virtual.reals:
            reals.append({f: getattr(real, f) for f in _REAL_FIELDS})
            budget -= 1
            if budget <= 0:
                budget = SLICE
                await asyncio.sleep(0)
        item["reals"] = reals
        virtuals.append(item)
    scheduler = {f: getattr(snap.scheduler, f) for f in _SCHEDULER_FIELDS}
    return {
        "at": snap.at,
        "first_round_done": snap.first_round_done,
        "last_sync_error": snap.last_sync_error,
        "scheduler": scheduler,
        "virtuals": virtuals,
        "refused": list(snap.refused),
    }


async def encode(document: dict[str, Any]) -> bytes:
    """json.dumps(document) + newline, the virtuals' reals encoded SLICE at a time."""
    if "virtuals" not in document:
        return json.dumps(document).encode() + b"\n"
    virtuals = document["virtuals"]
    head = json.dumps({k: v for k, v in document.items() if k != "virtuals"})
    parts = [head[:-1], ', "virtuals": [' if head != "{}" else '"virtuals": [']
    budget = SLICE
    for i, virtual in enumerate(virtuals):
        if i:
            parts.append(", ")
        reals = virtual.get("reals", [])
        top = json.dumps({k: v for k, v in virtual.items() if k != "reals"})
        parts.append(top[:-1] + ', "reals": [')
        for j in range(0, len(reals), SLICE):
            if j:
                parts.append(", ")
            parts.append(json.dumps(reals[j:j + SLICE])[1:-1])
            budget -= min(SLICE, len(reals) - j)
            if budget <= 0:
                budget = SLICE
                await asyncio.sleep(0)
        parts.append("]}")
    parts.append("]}\n")
    return "".join(parts).encode()
