"""Runs every check identity on its own fixed-rate schedule, with a deadline on every run.

One timer per identity on the event loop (no thread, no task while idle). Runs
are due at start + k * checkinterval: a slow run does not push the next one
back (no drift). If a run is still in flight when the next one falls due, that
tick is skipped rather than stacking runs on a dead server; if the loop itself
fell more than an interval behind, the missed ticks are dropped, not replayed.
Start times are spread evenly over the first interval so that 10,000 checks do
not all fire in the same millisecond.

Every run is bounded twice: CheckRunner.run enforces spec.deadline, and the
scheduler cancels any run still going GRACE seconds after that, reporting it as
a failure. A numeric checktype N runs one negotiate, then N connect checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
from array import array
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from healthd.checks.spec import CheckSpec, CheckType, Outcome

RunCheck = Callable[[CheckSpec], Awaitable[Outcome]]
OnOutcome = Callable[[CheckSpec, Outcome], None]

# Checktypes whose verdict never changes: nothing to schedule.
UNSCHEDULED = frozenset({CheckType.ON, CheckType.OFF})


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    identities: int
    runs_started: int
    runs_finished: int
    ticks_skipped: int  # previous run still in flight when the next fell due
    ticks_dropped: int  # the loop was more than an interval late
    overruns: int  # runs cancelled by the scheduler's own deadline guard
    lateness_samples: int
    lateness_median: float  # seconds
    lateness_p99: float
    lateness_max: float


class LatenessLog:
    """The last `size` lateness samples (actual start - scheduled start), in a flat array."""

    def __init__(self, size: int = 1 << 16) -> None:
        self._buf = array("d", bytes(8 * size))
        self._size = size
        self._n = 0
        self.max = 0.0

    def add(self, value: float) -> None:
        self._buf[self._n % self._size] = value
        self._n += 1
        if value > self.max:
            self.max = value

    def reset(self) -> None:
        self._n = 0
        self.max = 0.0

    def samples(self) -> list[float]:
        return list(self._buf[: min(self._n, self._size)])

    def percentile(self, q: float) -> float:
        data = sorted(self.samples())
        if not data:
            return 0.0
        return data[min(len(data) - 1, int(q * len(data)))]


class _Slot:
    """The schedule of one identity."""

    __slots__ = ("active", "connect_spec", "due", "guard", "handle", "interval", "runs", "spec", "task")

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.interval = max(spec.checkinterval, 0.001)
        self.connect_spec: CheckSpec | None = None
        if spec.connect_every > 0:
            self.connect_spec = dataclasses.replace(spec, type=CheckType.CONNECT, connect_every=0)
        self.due = 0.0
        self.runs = 0
        self.active = True
        self.handle: asyncio.TimerHandle | None = None
        self.guard: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def next_spec(self) -> CheckSpec:
        """The spec for the next run: numeric checktype N alternates 1 negotiate, N connects."""
        spec = self.spec
        if self.connect_spec is not None and self.runs % (spec.connect_every + 1) != 0:
            spec = self.connect_spec
        self.runs += 1
        return spec


class Scheduler:
    """Schedules check identities; feeds every verdict to `on_outcome(identity, outcome)`."""

    GRACE = 0.5  # seconds past spec.deadline before the scheduler cancels a run itself

    def __init__(self, run: RunCheck, on_outcome: OnOutcome, *, lateness_samples: int = 1 << 16) -> None:
        self._run = run
        self._on_outcome = on_outcome
        self._slots: dict[CheckSpec, _Slot] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.lateness = LatenessLog(lateness_samples)
        self.runs_started = 0
        self.runs_finished = 0
        self.ticks_skipped = 0
        self.ticks_dropped = 0
        self.overruns = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, specs: Iterable[CheckSpec]) -> None:
        """Schedule `specs`, first runs spread over each one's first interval."""
        self._loop = asyncio.get_running_loop()
        self.update(specs, spread=None)

    def update(self, specs: Iterable[CheckSpec], spread: float | None = 1.0) -> tuple[int, int]:
        """Make the schedule match `specs`: unchanged identities keep their timing, removed ones
        stop (a run in flight is cancelled and its verdict dropped), new ones start within
        `spread` seconds (None: within their own interval). Returns (started, stopped)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("Scheduler.update() before start()")
        wanted = {s for s in specs if s.type not in UNSCHEDULED}
        stopped = 0
        for spec in [s for s in self._slots if s not in wanted]:
            self._retire(self._slots.pop(spec))
            stopped += 1
        new = [s for s in wanted if s not in self._slots]
        new.sort(key=lambda s: (s.address, s.port, hash(s)))  # a stable, address-ordered spread
        now = loop.time()
        n = len(new)
        for i, spec in enumerate(new):
            slot = _Slot(spec)
            window = slot.interval if spread is None else min(spread, slot.interval)
            slot.due = now + window * i / n
            slot.handle = loop.call_at(slot.due, self._tick, slot)
            self._slots[spec] = slot
        return n, stopped

    async def stop(self) -> None:
        """Stop every schedule and cancel every run in flight."""
        slots = list(self._slots.values())
        self._slots.clear()
        tasks = [s.task for s in slots if s.task is not None]
        for slot in slots:
            self._retire(slot)
        if tasks:
            await asyncio.wait(tasks, timeout=self.GRACE + 1.0)

    def _retire(self, slot: _Slot) -> None:
        slot.active = False
        if slot.handle is not None:
            slot.handle.cancel()
        if slot.guard is not None:
            slot.guard.cancel()
        if slot.task is not None:
            slot.task.cancel()

    # -- the hot path: keep it lean, it runs 10,000 times a second ------------------------

    def _tick(self, slot: _Slot) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        due = slot.due
        if slot.task is None:
            spec = slot.next_spec()
            slot.task = task = loop.create_task(self._one_run(slot, spec, due))
            slot.guard = loop.call_at(now + spec.deadline + self.GRACE, self._overrun, slot, task)
            self.runs_started += 1
        else:
            self.ticks_skipped += 1
        interval = slot.interval
        due += interval
        if due <= now:  # the loop was stalled: drop the missed ticks, keep the grid
            missed = int((now - due) // interval) + 1
            self.ticks_dropped += missed
            due += missed * interval
        slot.due = due
        slot.handle = loop.call_at(due, self._tick, slot)

    async def _one_run(self, slot: _Slot, spec: CheckSpec, due: float) -> None:
        loop = self._loop
        assert loop is not None
        started = loop.time()
        self.lateness.add(started - due)
        try:
            outcome = await self._run(spec)
        except asyncio.CancelledError:
            if slot.active:  # our deadline guard, not a stop: a verdict, not a crash
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                outcome = Outcome(False, f"no verdict within {spec.deadline:g} s", loop.time() - started)
            else:
                raise
        except Exception as exc:  # a bug in a check must not kill its schedule
            outcome = Outcome(False, f"check failed: {type(exc).__name__}: {exc}", loop.time() - started)
        finally:
            if slot.guard is not None:
                slot.guard.cancel()
                slot.guard = None
            slot.task = None
        self.runs_finished += 1
        if slot.active:
            self._on_outcome(slot.spec, outcome)

    def _overrun(self, slot: _Slot, task: asyncio.Task[None]) -> None:
        if slot.task is task and not task.done():
            self.overruns += 1
            task.cancel()

    # -- inspection --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, spec: object) -> bool:
        return spec in self._slots

    def next_due(self, spec: CheckSpec) -> float | None:
        slot = self._slots.get(spec)
        return None if slot is None else slot.due

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            identities=len(self._slots),
            runs_started=self.runs_started,
            runs_finished=self.runs_finished,
            ticks_skipped=self.ticks_skipped,
            ticks_dropped=self.ticks_dropped,
            overruns=self.overruns,
            lateness_samples=min(self.lateness._n, self.lateness._size),
            lateness_median=self.lateness.percentile(0.5),
            lateness_p99=self.lateness.percentile(0.99),
            lateness_max=self.lateness.max,
        )
