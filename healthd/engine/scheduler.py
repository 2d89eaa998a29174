"""Runs every check identity on its own fixed-rate schedule, with a deadline on every run.

Runs are due at start + k * checkinterval: a slow run does not push the next one
back (no drift). If a run is still in flight when the next one falls due, that
tick is skipped rather than stacking runs on a dead server; if the loop itself
fell more than an interval behind, the missed ticks are dropped, not replayed.
Start times are spread evenly over the first interval so that 10,000 checks do
not all fire in the same millisecond.

Every run is bounded twice: CheckRunner.run enforces spec.deadline, and the
scheduler cancels any run still going GRACE seconds after that, reporting it as
a failure. A numeric checktype N runs one negotiate, then N connect checks; after a
failure of either kind the next run is a negotiate (ldirectord's rule).

Two healthd extensions ride on the same schedule. `interval_of(identity)` is asked
after every verdict (healthd.engine.health.next_interval): while a change of state
is pending it may return `fastinterval`, and the next run moves forward to
now + that interval; the normal grid resumes once it returns `checkinterval`. An
identity with an `agentport` gets its agent asked (`agent(identity)`) beside every
run, concurrently and under the same deadline; its answer (None: no answer) goes
to `on_agent` just before the run's verdict goes to `on_outcome`.

A check with a task-free form (`fast(identity)`, CheckRunner.fast: plain HTTP) is
started straight from the tick and reports through a callback (no Task per run, see
healthd.checks.httpfast); its deadline is the runner's, and stopping it is
`run.cancel()`. Every other run is a task that awaits `run(spec)`.

Why a timing wheel rather than one loop.call_at() per identity: at 10,000 checks a
second, asyncio's timer heap of TimerHandle objects (compared in Python) cost about
half of the scheduler's CPU. Here identities due in the same millisecond share a
bucket, the heap holds plain integers (one per bucket), and a single timer drives
the whole wheel; deadlines are watched by one sweep every SWEEP seconds instead of
one timer per run. Idle identities cost nothing but a list entry.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import heapq
import logging
from array import array
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from healthd.checks import failures
from healthd.checks.agent import AgentReply
from healthd.checks.spec import CheckSpec, CheckType, Outcome

log = logging.getLogger(__name__)

RunCheck = Callable[[CheckSpec], Awaitable[Outcome]]
OnOutcome = Callable[[CheckSpec, Outcome], None]
IntervalOf = Callable[[CheckSpec], float]
RunAgent = Callable[[CheckSpec], Awaitable["AgentReply | None"]]
OnAgent = Callable[[CheckSpec, "AgentReply | None"], None]


class FastRun(Protocol):
    """One task-free run in flight (healthd.checks.httpfast)."""

    def cancel(self) -> None: ...  # abandon it: no verdict


class FastCheck(Protocol):
    """An identity's task-free check: launch(done, token) calls done(token, outcome) once, later."""

    def launch(self, done: Callable[[_Schedule, Outcome], None], token: _Schedule) -> FastRun: ...


FastOf = Callable[[CheckSpec], "FastCheck | None"]



@dataclass(frozen=True, slots=True)
class SchedulerStats:
    identities: int
    runs_started: int
    runs_finished: int
    ticks_skipped: int  # previous run still in flight when the next fell due
    ticks_dropped: int  # the loop was more than an interval late
    ticks_shed: int  # not run: the wheel was more than SHED_LAG late until the next tick (overload)
    ticks_deferred: int  # held back a little because the wheel was more than SHED_LAG late
    overruns: int  # runs cancelled by the scheduler's own deadline guard
    lateness_samples: int
    lateness_median: float  # seconds
    lateness_p99: float
    lateness_max: float
    # cumulative (upper bound in seconds, runs started no later than that), finite bounds only
    # (JSON has no infinity): lateness_count is the +Inf bucket
    lateness_histogram: tuple[tuple[float, int], ...] = ()
    lateness_count: int = 0  # runs started since the scheduler started
    lateness_sum: float = 0.0  # seconds, over every run started


# Upper bounds of the lateness histogram (seconds): SHED_LAG sits between two of them.
LATENESS_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LatenessLog:
    """The last `size` lateness samples (actual start - scheduled start), in a flat array,
    and a histogram of every sample since start (for Prometheus: a ring forgets)."""

    def __init__(self, size: int = 1 << 16) -> None:
        self._buf = array("d", bytes(8 * size))
        self._size = size
        self._n = 0
        self.max = 0.0
        self._counts = array("q", bytes(8 * (len(LATENESS_BOUNDS) + 1)))
        self.sum = 0.0

    def add(self, value: float) -> None:
        self._buf[self._n % self._size] = value
        self._n += 1
        if value > self.max:
            self.max = value
        self._counts[bisect.bisect_left(LATENESS_BOUNDS, value)] += 1
        self.sum += value

    def histogram(self) -> tuple[tuple[tuple[float, int], ...], int]:
        """Cumulative counts per finite upper bound, and the count of every sample (never reset)."""
        out, total = [], 0
        for bound, count in zip(LATENESS_BOUNDS, self._counts, strict=False):
            total += count
            out.append((bound, total))
        return tuple(out), total + self._counts[-1]

    def reset(self) -> None:
        """Forget the recent samples (benchmarks measure a window); the histogram keeps counting."""
        self._n = 0
        self.max = 0.0

    def samples(self) -> list[float]:
        return list(self._buf[: min(self._n, self._size)])

    def percentile(self, q: float) -> float:
        return self.percentiles((q,))[0]

    def percentiles(self, qs: tuple[float, ...], limit: int | None = None) -> list[float]:
        """The q-quantiles of the recent samples, from one sort. With `limit`, of an evenly
        strided subset of at most `limit` samples: sorting all 65,536 takes about 50 ms, a
        stall the status page and every scrape would cause; 4,096 take well under 1 ms."""
        n = min(self._n, self._size)
        if not n:
            return [0.0 for _ in qs]
        stride = 1 if limit is None or n <= limit else -(-n // limit)
        data = sorted(self._buf[0:n:stride])
        return [data[min(len(data) - 1, int(q * len(data)))] for q in qs]


class _Schedule:
    """The schedule of one identity."""

    __slots__ = (
        "active", "bucket", "connect_spec", "deferred", "due", "fast", "fast_known", "interval", "overdue_at",
        "runs", "spec", "task",
    )

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.interval = max(spec.checkinterval, 0.001)
        self.connect_spec: CheckSpec | None = None
        if spec.connect_every > 0:
            self.connect_spec = dataclasses.replace(spec, type=CheckType.CONNECT, connect_every=0)
        self.due = 0.0
        self.bucket = 0  # the wheel bucket the schedule waits in; its entries in others are stale
        self.runs = 0
        self.deferred = False  # this tick was already held back once
        self.active = True
        self.overdue_at = 0.0  # loop time after which the run in flight is cancelled
        self.task: asyncio.Task[None] | FastRun | None = None  # the run in flight
        self.fast: FastCheck | None = None  # the task-free form of spec's check, if it has one
        self.fast_known = False  # `fast` was asked for (at the first run: not all at start-up)

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
    SWEEP = 0.25  # seconds between two looks for runs past their deadline
    RESOLUTION = 0.001  # width of a bucket of the wheel, seconds
    # When the wheel itself runs this late, the process cannot keep up with the checks it is
    # asked to run (CPU starved, or too many checks for one core): ticks that late are
    # deferred, and shed (counted, not run) if still waiting when their next one is due.
    # Running them anyway would let the event loop fall seconds behind, and then checks that
    # did get their answer in time would be judged timed out: an overloaded checker must
    # check less often, never report reals down.
    SHED_LAG = 0.2

    def __init__(
        self, run: RunCheck, on_outcome: OnOutcome, *, lateness_samples: int = 1 << 16,
        interval_of: IntervalOf | None = None, agent: RunAgent | None = None, on_agent: OnAgent | None = None,
        fast: FastOf | None = None,
    ) -> None:
        self._run = run
        self._fast = fast
        self._fast_done_cb = self._fast_done  # one bound method, not one per run
        self._on_outcome = on_outcome
        self._interval_of = interval_of
        self._agent = agent
        self._on_agent = on_agent
        self._schedules: dict[CheckSpec, _Schedule] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buckets: dict[int, list[_Schedule]] = {}  # bucket number -> schedules due in it
        self._heap: list[int] = []  # bucket numbers that have schedules
        self._driver: asyncio.TimerHandle | None = None
        self._driver_at = 0  # bucket number the driver is set for
        self._driving = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._running: dict[_Schedule, asyncio.Task[None]] = {}
        self.lateness = LatenessLog(lateness_samples)
        self.runs_started = 0
        self.runs_finished = 0
        self.ticks_skipped = 0
        self.ticks_dropped = 0
        self.ticks_shed = 0
        self.ticks_deferred = 0
        self.overruns = 0
        self.turns = 0  # times the wheel's timer fired (benchmarks: wake-ups for the schedule)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, specs: Iterable[CheckSpec]) -> None:
        """Schedule `specs`, first runs spread over each one's first interval."""
        self._loop = asyncio.get_running_loop()
        self.update(specs, spread=None)
        self._sweeper = self._loop.call_later(self.SWEEP, self._sweep)

    def update(self, specs: Iterable[CheckSpec], spread: float | None = 1.0) -> tuple[int, int]:
        """Make the schedule match `specs`: unchanged identities keep their timing, removed ones
        stop (a run in flight is cancelled and its verdict dropped), new ones start within
        `spread` seconds (None: within their own interval). Returns (started, stopped)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("Scheduler.update() before start()")
        wanted = {s for s in specs if s.type.runs}  # on/off: a verdict that never changes
        stopped = 0
        for spec in [s for s in self._schedules if s not in wanted]:
            self._retire(self._schedules.pop(spec))
            stopped += 1
        new = [s for s in wanted if s not in self._schedules]
        new.sort(key=lambda s: (s.address, s.port, hash(s)))  # a stable, address-ordered spread
        now = loop.time()
        n = len(new)
        for i, spec in enumerate(new):
            sched = _Schedule(spec)
            window = sched.interval if spread is None else min(spread, sched.interval)
            sched.due = now + window * i / n
            self._enqueue(sched)
            self._schedules[spec] = sched
        return n, stopped

    async def stop(self) -> None:
        """Stop every schedule and cancel every run in flight."""
        schedules = list(self._schedules.values())
        self._schedules.clear()
        for handle in (self._driver, self._sweeper):
            if handle is not None:
                handle.cancel()
        self._driver = self._sweeper = None
        self._buckets.clear()
        self._heap.clear()
        tasks = [s.task for s in schedules if isinstance(s.task, asyncio.Task)]
        for sched in schedules:
            self._retire(sched)
        if tasks:
            await asyncio.wait(tasks, timeout=self.GRACE + 1.0)

    def _retire(self, sched: _Schedule) -> None:
        sched.active = False  # its bucket entry is skipped when the wheel reaches it
        if sched.task is not None:
            sched.task.cancel()

    # -- the hot path: keep it lean, it runs 10,000 times a second ------------------------

    def _enqueue(self, sched: _Schedule, at: float | None = None) -> None:
        """Put the sched in the bucket of its due time (or of `at`, for a deferred tick)."""
        when = sched.due if at is None else at
        number = -int(-when // self.RESOLUTION)  # the first bucket that starts at or after `when`
        sched.bucket = number
        bucket = self._buckets.get(number)
        if bucket is not None:
            bucket.append(sched)
            return
        self._buckets[number] = [sched]
        heapq.heappush(self._heap, number)
        if not self._driving and (self._driver is None or number < self._driver_at):
            self._arm(number)

    def _arm(self, number: int) -> None:
        loop = self._loop
        assert loop is not None
        if self._driver is not None:
            self._driver.cancel()
        self._driver_at = number
        self._driver = loop.call_at(number * self.RESOLUTION, self._drive)

    def _drive(self) -> None:
        """Fire every sched of every bucket that is due, then set the timer for the next bucket."""
        loop = self._loop
        assert loop is not None
        self._driver = None
        self.turns += 1
        now = loop.time()
        last = int((now + 1e-6) / self.RESOLUTION)  # asyncio may run a timer a hair early
        heap, buckets = self._heap, self._buckets
        self._driving = True  # re-queued schedules must not re-arm the timer one by one
        late_before = (now - self.SHED_LAG) / self.RESOLUTION
        try:
            while heap and heap[0] <= last:
                number = heapq.heappop(heap)
                late = number < late_before
                for sched in buckets.pop(number):
                    if sched.active and sched.bucket == number:
                        self._tick(sched, now, late)
        finally:
            self._driving = False
        if heap:
            self._arm(heap[0])

    def _tick(self, sched: _Schedule, now: float, late: bool = False) -> None:
        loop = self._loop
        assert loop is not None
        due = sched.due
        interval = sched.interval
        if late:
            # Overload: start nothing now, let the runs in flight finish. The tick waits a
            # little (spread, so that deferred ticks do not all return at once) and runs if
            # the wheel is on time by then; still late, it is shed (deferring it again and
            # again would only add work). A first run waits as long as it takes: no verdict
            # means no traffic for that real.
            retry = now + self.SHED_LAG * (1.0 + (id(sched) >> 4) % 64 / 64)
            if sched.runs == 0 or (not sched.deferred and retry < due + interval):
                sched.deferred = True
                self.ticks_deferred += 1
                self._enqueue(sched, retry)
                return
            sched.deferred = False
            self.ticks_shed += 1
        elif sched.task is None:
            sched.deferred = False
            spec = sched.next_spec()
            if not sched.fast_known:
                sched.fast_known = True
                if self._fast is not None and not (self._agent is not None and spec.agentport):
                    try:
                        sched.fast = self._fast(sched.spec)
                    except Exception:  # as a failed launch below: tasks for this identity
                        log.exception("task-free check of %s cannot be made", spec.target)
            launched = None
            if sched.fast is not None and spec is sched.spec:  # a numeric checktype's connects: tasks
                try:
                    launched = sched.fast.launch(self._fast_done_cb, sched)
                except Exception:  # a bug there must not stop the wheel: this identity goes back to tasks
                    log.exception("task-free check of %s failed to start", spec.target)
                    sched.fast = None
            if launched is not None:
                self.lateness.add(now - due)
                sched.task = launched
            else:
                sched.task = task = loop.create_task(self._one_run(sched, spec, due))
                sched.overdue_at = now + spec.deadline + self.GRACE
                self._running[sched] = task
            self.runs_started += 1
        else:
            sched.deferred = False
            self.ticks_skipped += 1
        due += interval
        if due <= now:  # the loop was stalled: drop the missed ticks, keep the grid
            missed = int((now - due) // interval) + 1
            self.ticks_dropped += missed
            due += missed * interval
        sched.due = due
        self._enqueue(sched)

    def _sweep(self) -> None:
        """Cancel runs that outlived their deadline: the backstop behind CheckRunner's own."""
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for sched, task in list(self._running.items()):
            if now > sched.overdue_at and sched.task is task and not task.done():
                self.overruns += 1
                task.cancel()
        self._sweeper = loop.call_later(self.SWEEP, self._sweep)

    async def _one_run(self, sched: _Schedule, spec: CheckSpec, due: float) -> None:
        loop = self._loop
        assert loop is not None
        started = loop.time()
        self.lateness.add(started - due)
        agent: asyncio.Task[AgentReply | None] | None = None
        if self._agent is not None and sched.spec.agentport:
            agent = loop.create_task(self._agent(sched.spec))
        try:
            outcome = await self._run(spec)
        except asyncio.CancelledError:
            if sched.active:  # our deadline guard, not a stop: a verdict, not a crash
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                outcome = Outcome(False, failures.timed_out(spec.deadline), loop.time() - started)
            else:
                if agent is not None:
                    agent.cancel()
                raise
        except Exception as exc:  # a bug in a check must not kill its schedule
            outcome = Outcome(False, failures.crashed(exc), loop.time() - started)
        finally:
            if agent is None:
                self._running.pop(sched, None)
                sched.task = None
        reply: AgentReply | None = None
        if agent is not None:
            try:
                reply = await agent  # bounded by the agent's own deadline (healthd.checks.agent)
            except asyncio.CancelledError:
                if not sched.active:
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                agent.cancel()
            except Exception:  # a broken agent is no answer
                reply = None
            finally:
                self._running.pop(sched, None)
                sched.task = None
        self.runs_finished += 1
        if not outcome.ok and sched.connect_spec is not None:
            sched.runs = 0  # as ldirectord: after any failure the next run negotiates again
        if sched.active:
            if agent is not None and self._on_agent is not None:
                self._on_agent(sched.spec, reply)
            self._on_outcome(sched.spec, outcome)
            if self._interval_of is not None:
                self._retime(sched, self._interval_of(sched.spec))

    def _fast_done(self, sched: _Schedule, outcome: Outcome) -> None:
        """The verdict of a task-free run: what the end of _one_run does (no agent: those use tasks)."""
        sched.task = None
        self.runs_finished += 1
        if not outcome.ok and sched.connect_spec is not None:
            sched.runs = 0
        if sched.active:
            self._on_outcome(sched.spec, outcome)
            if self._interval_of is not None:
                interval = self._interval_of(sched.spec)
                if interval != sched.interval:
                    self._retime(sched, interval)

    def _retime(self, sched: _Schedule, interval: float) -> None:
        """Switch the schedule to `interval`: a shorter one brings the next run forward to
        now + interval, a longer one puts it one new interval after the run that was last due."""
        interval = max(interval, 0.001)
        previous = sched.interval
        if interval == previous or not sched.active:
            sched.interval = interval
            return
        sched.interval = interval
        loop = self._loop
        assert loop is not None
        due = loop.time() + interval if interval < previous else sched.due - previous + interval
        if interval < previous and due >= sched.due:
            return
        sched.due = due
        self._enqueue(sched)  # the entry in the old bucket is now stale and skipped

    # -- inspection --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._schedules)

    def __contains__(self, spec: object) -> bool:
        return spec in self._schedules

    def next_due(self, spec: CheckSpec) -> float | None:
        sched = self._schedules.get(spec)
        return None if sched is None else sched.due

    ESTIMATE_SAMPLES = 4096  # lateness percentiles of stats() come from at most this many samples

    def stats(self, exact: bool = False) -> SchedulerStats:
        """Counters and lateness; the percentiles estimated from a subset unless `exact` (benchmarks)."""
        histogram, count = self.lateness.histogram()
        median, p99 = self.lateness.percentiles((0.5, 0.99), None if exact else self.ESTIMATE_SAMPLES)
        return SchedulerStats(
            identities=len(self._schedules),
            runs_started=self.runs_started,
            runs_finished=self.runs_finished,
            ticks_skipped=self.ticks_skipped,
            ticks_dropped=self.ticks_dropped,
            ticks_shed=self.ticks_shed,
            ticks_deferred=self.ticks_deferred,
            overruns=self.overruns,
            lateness_samples=min(self.lateness._n, self.lateness._size),
            lateness_median=median,
            lateness_p99=p99,
            lateness_max=self.lateness.max,
            lateness_histogram=histogram,
            lateness_count=count,
            lateness_sum=self.lateness.sum,
        )
