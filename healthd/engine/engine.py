"""The engine: check verdicts in, a reconciled IPVS table out, typed events to its observers.

    outcomes -> HealthBook -> (a state changed) -> coalesce a few ms -> policy -> safety -> Reconciler.sync

One applier task owns every call to the reconciler, so syncs never overlap and a
burst of state changes becomes one sync. Policy is recomputed only for the
virtuals a change touched; the reconciler still gets the whole desired table.
The daemon drives it: start(), reload(config), stop(cleanstop), snapshot(),
`first_round` (set once every check gave a verdict and the table was applied);
everything that happens is published on `events` (healthd.engine.bus.EventBus).
The jobs around it live in their own modules: maintenancedir (maintenance.MaintenanceWatch),
fallbackcommand (commands.FallbackCommands), first-round tracking (first_round.FirstRound),
GC freezing (gcfreeze).

The healthd extensions of healthd.engine.safety (agent weights, depoolthreshold,
slowstart, drain) shape each plan; the engine only feeds them: agent answers from
the scheduler, the time (loop.time(), passed in), the kernel's active connections
of draining reals (read every `drain_poll` seconds while one drains), and a timer
for the moment a shaped plan says it changes by itself (`wake_at`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from healthd.checks.agent import AgentReply, run_agent
from healthd.checks.spec import CheckSpec, Outcome
from healthd.config.model import Config, Real, Virtual
from healthd.engine import events
from healthd.engine.bus import EventBus
from healthd.engine.commands import FallbackCommands
from healthd.engine.first_round import FirstRound
from healthd.engine.gcfreeze import freeze_long_lived
from healthd.engine.health import HealthBook, next_interval
from healthd.engine.maintenance import MaintenanceWatch, RealId
from healthd.engine.policy import VirtualPlan, fallback_dest_key, plan_virtual, service_key
from healthd.engine.safety import SafetyState, Shaped, real_dest_key, shape
from healthd.engine.scheduler import RunAgent, Scheduler
from healthd.engine.snapshot import Snapshot, SnapshotSource, build_snapshot, build_snapshot_sliced
from healthd.ipvs.model import DestKey, Entry, Operation, ServiceKey, Table
from healthd.ipvs.refusals import Refusal, without_refused
from healthd.vocab import State


class Runner(Protocol):
    """What the engine needs of healthd.checks.runner.CheckRunner."""

    async def start(self, services: Iterable[str] | None = None) -> None:
        """Get ready to check `services` (load their modules); called again by a reload."""
        ...

    async def run(self, spec: CheckSpec) -> Outcome: ...

    async def close(self) -> None: ...


class Syncer(Protocol):
    """What the engine needs of healthd.ipvs.reconcile.Reconciler."""

    async def dump(self) -> Table: ...

    async def sync(self, desired: Table, managed: frozenset[ServiceKey] | set[ServiceKey]
                   ) -> Sequence[Operation] | None: ...

    async def resync(self) -> None: ...


class Engine:
    """Checks every real of a Config and keeps the IPVS table in line with their health."""

    def __init__(
        self,
        config: Config,
        runner: Runner,
        reconciler: Syncer,
        *,
        events: EventBus | None = None,
        on_event: Callable[[events.Event], None] | None = None,
        coalesce: float = 0.015,
        retry: float = 1.0,
        maintenance_period: float = 1.0,
        command_timeout: float = 30.0,
        command_wait: float = 35.0,
        resolve_deadline: float = 5.0,
        resolver: Callable[[str], str | None] | None = None,
        freeze_gc: bool = True,
        resync_interval: float | None = 60.0,
        agent: RunAgent = run_agent,
        drain_poll: float = 0.5,
    ) -> None:
        self.config = config
        self.events = events if events is not None else EventBus()
        if on_event is not None:  # a shorthand for tests and benchmarks: every routine event
            self.events.subscribe(on_event)
        self._runner = runner
        self._reconciler = reconciler
        self.coalesce = coalesce
        self.retry = retry
        self.command_wait = command_wait  # seconds stop() waits for `fallbackcommand stop`
        self.freeze_gc = freeze_gc
        self.resync_interval = resync_interval  # seconds between drift repairs; None: never
        self.health = HealthBook()
        self.scheduler = Scheduler(
            runner.run, self._on_outcome, agent=agent, on_agent=self._on_agent,
            interval_of=lambda spec: next_interval(spec, self.health.get(spec)),
            fast=getattr(runner, "fast", None),  # CheckRunner's task-free checks (plain HTTP)
        )
        self.drain_poll = drain_poll  # seconds between two reads of a draining real's connections
        self.fallback_commands = FallbackCommands(self.events, command_timeout)
        self.maintenance = MaintenanceWatch(self._maintenance_changed, self._notice,
                                            period=maintenance_period, resolve_deadline=resolve_deadline,
                                            resolver=resolver)
        self._first = FirstRound()
        self.first_round = self._first.done
        self.last_sync_error: str | None = None
        self.syncs = 0

        self._virtuals: dict[ServiceKey, Virtual] = {}
        self._users: dict[CheckSpec, list[tuple[ServiceKey, Real]]] = {}
        self._plans: dict[ServiceKey, VirtualPlan] = {}
        self._adopted: Table = {}
        self._retired: set[ServiceKey] = set()  # left the config: removed at the next sync
        self._dirty: set[ServiceKey] = set()
        self.applied: Table = {}  # the last desired table that synced without error
        self._wake = asyncio.Event()
        self._gen = 0  # bumps on every change that needs a sync
        self._applied_gen = 0
        self._applied_cond = asyncio.Condition()
        self._applier: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None  # wakes the applier when a refused entry is due
        self._stopping = False
        self._started = False
        # healthd.engine.safety: its state per virtual (kept across reloads), its last result,
        # agent answers per check identity, active connections of draining reals
        self._safety: dict[ServiceKey, SafetyState] = {}
        self._shaped: dict[ServiceKey, Shaped] = {}
        self._agents: dict[CheckSpec, AgentReply] = {}
        self._conns: dict[ServiceKey, dict[DestKey, int]] = {}
        self._wake_at: float | None = None
        self._waker: asyncio.TimerHandle | None = None
        self._drain_task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the check runner, adopt the kernel table, apply the first desired table, start checking.

        Raises what the reconciler raises when the very first sync fails: without a
        table to manage the daemon should not claim to be running.
        """
        if self._started:
            raise RuntimeError("engine already started")
        self._started = True
        await self._runner.start({v.service for v in self.config.virtuals})
        try:
            self._adopted = await self._reconciler.dump()
            self._index(self.config)
            self._configure_maintenance(self.config)
            self._replan(set(self._virtuals))
            await self._sync_now()
            if self.last_sync_error is not None:
                raise RuntimeError(f"cannot apply the IPVS table: {self.last_sync_error}")
        except BaseException:
            await self.maintenance.stop()
            await self._runner.close()
            raise
        self._follow_fallbacks()
        self._freeze()
        self.scheduler.start(self._users)
        self._applier = asyncio.get_running_loop().create_task(self._apply_loop(), name="healthd-apply")
        if self._first.complete:  # nothing to wait for (no scheduled check)
            self._mark_dirty()

    async def reload(self, config: Config) -> None:
        """Switch to a new config; every check identity that did not change keeps its state."""
        if not self._started or self._stopping:
            raise RuntimeError("engine not running")
        old_virtuals = self._virtuals
        with contextlib.suppress(Exception):  # no fresh view: adopt from the old one
            self._adopted = await self._reconciler.dump()
        await self._runner.start({v.service for v in config.virtuals})  # the services it adds
        self.config = config
        self._index(config)
        gone = set(old_virtuals) - set(self._virtuals)
        self._retired |= gone
        for key in gone:
            self._plans.pop(key, None)
            self._safety.pop(key, None)
            self._shaped.pop(key, None)
            self._conns.pop(key, None)
            self.fallback_commands.retire(key, old_virtuals[key], config.settings.fallbackcommand)
        self._configure_maintenance(config)
        self.scheduler.update(self._users)
        self._replan(set(self._virtuals))
        self._mark_dirty()
        self._freeze()

    async def stop(self, cleanstop: bool | None = None, command_wait: float | None = None) -> None:
        """Stop checking; remove managed services (cleanstop); run `fallbackcommand stop`; close the runner.

        cleanstop None: each virtual's own `cleanstop` setting; True: remove every
        managed service; False: leave the table as it is.
        """
        if self._stopping:
            return
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()
        try:
            await self.scheduler.stop()
            self._wake.set()
            if self._waker is not None:
                self._waker.cancel()
            if self._drain_task is not None:
                self._drain_task.cancel()
                await asyncio.gather(self._drain_task, return_exceptions=True)
            if self._applier is not None:
                self._applier.cancel()
                await asyncio.gather(self._applier, return_exceptions=True)
            await self.maintenance.stop()
            await self._clean_stop(cleanstop)
            self.fallback_commands.stop_all(self._virtuals, self.config.settings.fallbackcommand)
            wait = self.command_wait if command_wait is None else command_wait
            await self.fallback_commands.queue.drain(wait)
        finally:
            await self._runner.close()

    async def _clean_stop(self, cleanstop: bool | None) -> None:
        remove = {
            key for key, v in self._virtuals.items() if (v.cleanstop if cleanstop is None else cleanstop)
        }
        if not remove and not self._retired:
            return
        desired = {k: e for k, e in self._plans_table().items() if k not in remove}
        try:
            await self._reconciler.sync(desired, remove | self._retired)
            self.applied = desired
        except Exception as exc:
            self.events.emit(events.SyncFailed(f"{type(exc).__name__}: {exc}"))

    async def flush(self) -> None:
        """Wait until every change made so far is applied (or failed to apply)."""
        target = self._gen
        async with self._applied_cond:
            await self._applied_cond.wait_for(lambda: self._applied_gen >= target or self._stopping)

    # -- inputs ---------------------------------------------------------------------------------

    def _on_outcome(self, spec: CheckSpec, outcome: Outcome) -> None:
        transition = self.health.record(spec, outcome)
        if self.events.wants_checks:
            self.events.emit(events.CheckDone(spec, outcome, self._users.get(spec, ()), time.time()))
        if self._first.heard(spec):
            self._mark_dirty()
        if transition is None:
            return
        dirty = self._dirty
        for key, real in self._users.get(spec, ()):
            dirty.add(key)
            self.events.emit(
                events.RealChanged(
                    self._virtuals[key], real, spec, transition.old, transition.new, outcome, transition.at
                )
            )
        self._mark_dirty()

    def _maintenance_changed(self, changed: frozenset[RealId]) -> None:
        down = self.maintenance.down
        for key, virtual in self._virtuals.items():
            for real in virtual.reals:
                if (real.address, real.port) in changed:
                    self._dirty.add(key)
                    entered = (real.address, real.port) in down
                    self.events.emit(events.MaintenanceChanged(virtual, real, entered))
        self._mark_dirty()

    def _on_agent(self, spec: CheckSpec, reply: AgentReply | None) -> None:
        if self._agents.get(spec) == reply:
            return
        if reply is None:
            self._agents.pop(spec, None)
        else:
            self._agents[spec] = reply
        for key, real in self._users.get(spec, ()):
            self._dirty.add(key)
            said = None if reply is None else str(reply)
            self.events.emit(events.AgentChanged(self._virtuals[key], real, said))
        self._mark_dirty()

    def _notice(self, message: str) -> None:
        self.events.emit(events.Notice(message))

    def _mark_dirty(self) -> None:
        self._gen += 1
        self._wake.set()

    # -- applying -----------------------------------------------------------------------------

    async def _apply_loop(self) -> None:
        while not self._stopping:
            if self.resync_interval:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.resync_interval)
                except TimeoutError:
                    await self._resync()
                    continue
            else:
                await self._wake.wait()
            if self._stopping:
                return
            await asyncio.sleep(self.coalesce)  # let a burst of verdicts land in one sync
            self._wake.clear()
            first = self._first.complete
            gen = self._gen
            dirty, self._dirty = self._dirty, set()
            self._replan(dirty)
            await self._sync_now(gen)
            self._follow_fallbacks()
            if first:
                self._first.applied()
            if self.last_sync_error is not None:
                await asyncio.sleep(self.retry)
                self._wake.set()

    async def _resync(self) -> None:
        """Repair drift (someone ran ipvsadm by hand) against the last desired table."""
        if self.last_sync_error is not None:
            return
        try:
            await self._reconciler.resync()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.events.emit(events.SyncFailed(f"resync: {type(exc).__name__}: {exc}"))

    def _replan(self, keys: set[ServiceKey]) -> None:
        settings = self.config.settings
        lookup = self.health.state
        maintenance = self.maintenance.down
        loop = asyncio.get_running_loop()
        now = loop.time()
        ramp = self.first_round.is_set()  # no slow start for the reals of the first round
        for key in keys:
            virtual = self._virtuals.get(key)
            if virtual is None:
                continue
            previous = self._plans.get(key)
            was_active = previous.fallback_active if previous else self._adopted_fallback(virtual, key)
            plan = plan_virtual(virtual, settings, lookup, maintenance, self._adopted.get(key), was_active)
            shaped = shape(virtual, plan, self._health_info, maintenance, self._agents.get,
                           self._conns.get(key, {}), self._safety.get(key), now, ramp=ramp)
            self._report_safety(virtual, self._shaped.get(key), shaped, now)
            self._safety[key] = shaped.state
            self._shaped[key] = shaped
            plan = VirtualPlan(shaped.entry, shaped.fallback_active)
            self._plans[key] = plan
            if previous is not None and previous.fallback_active != plan.fallback_active:
                self.events.emit(events.FallbackChanged(virtual, plan.fallback_active))
        self._arm_waker()
        if any(s.state.draining for s in self._shaped.values()) and (
            self._drain_task is None or self._drain_task.done()
        ):
            self._drain_task = loop.create_task(self._drain_loop(), name="healthd-drain")

    # -- the safety extensions' inputs ------------------------------------------------------------

    def _health_info(self, spec: CheckSpec) -> tuple[State, float]:
        rec = self.health.get(spec)
        return (State.UNKNOWN, 0.0) if rec is None else (rec.state, rec.since)

    def _report_safety(self, virtual: Virtual, before: Shaped | None, after: Shaped, now: float) -> None:
        """Events for what safety changed: reals held in by depoolthreshold, drains begun and ended."""
        old_held = before.held if before is not None else frozenset()
        if after.held != old_held:
            failing = sum(1 for r in virtual.reals if self.health.state(r.check) is State.DOWN)
            for real in virtual.reals:
                dkey = real_dest_key(virtual, real)
                if dkey in after.held ^ old_held:
                    held = dkey in after.held
                    self.events.emit(events.DepoolHeld(virtual, real, held, after.serving_needed, failing))
        old_drain = before.state.draining if before is not None else {}
        new_drain = after.state.draining
        for dkey in new_drain.keys() - old_drain.keys():
            self.events.emit(events.DrainChanged(virtual, str(dkey), True, new_drain[dkey].reason, 0.0))
        for dkey in old_drain.keys() - new_drain.keys():
            drain = old_drain[dkey]
            if dkey in after.entry.dests and after.entry.dests[dkey].weight > 0:
                how = "it serves again"
            elif now >= drain.until:
                how = "drain time is up"
            else:
                how = "no active connection left"
            self.events.emit(events.DrainChanged(virtual, str(dkey), False, how, now - drain.since))

    def _arm_waker(self) -> None:
        """One timer for the earliest moment a shaped plan changes by itself (ramp step, drain end)."""
        wakes = [s.wake_at for s in self._shaped.values() if s.wake_at is not None]
        when = min(wakes) if wakes else None
        if when == self._wake_at:
            return
        if self._waker is not None:
            self._waker.cancel()
            self._waker = None
        self._wake_at = when
        if when is not None and not self._stopping:
            self._waker = asyncio.get_running_loop().call_at(when, self._woken)

    def _woken(self) -> None:
        self._waker = None
        self._wake_at = None
        now = asyncio.get_running_loop().time()
        for key, shaped in self._shaped.items():
            if shaped.wake_at is not None and shaped.wake_at <= now + 0.001:
                self._dirty.add(key)
        self._mark_dirty()

    async def _drain_loop(self) -> None:
        """While a real drains, read the kernel's active connections of draining reals."""
        while not self._stopping:
            draining = {k: s.state.draining for k, s in self._shaped.items() if s.state.draining}
            if not draining:
                return
            try:
                table = await self._reconciler.dump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._notice(f"cannot read connection counters of draining reals: {exc}")
                table = {}
            changed = False
            for key, reals in draining.items():
                entry = table.get(key)
                if entry is None:
                    continue
                # a draining real someone already removed has nothing left to drain
                conns = {d: entry.dests[d].active_conns if d in entry.dests else 0 for d in reals}
                if conns != self._conns.get(key):
                    self._conns[key] = conns
                    if any(n <= 0 for n in conns.values()):
                        self._dirty.add(key)
                        changed = True
            if changed:
                self._mark_dirty()
            await asyncio.sleep(self.drain_poll)

    def _adopted_fallback(self, virtual: Virtual, key: ServiceKey) -> bool:
        """Was the fallback server serving in the kernel table we adopted?"""
        fkey = fallback_dest_key(virtual, self.config.settings)
        entry = self._adopted.get(key)
        if fkey is None or entry is None:
            return False
        dest = entry.dests.get(fkey)
        return dest is not None and dest.weight > 0

    def _plans_table(self) -> dict[ServiceKey, Entry]:
        return {key: plan.entry for key, plan in self._plans.items()}

    async def _sync_now(self, gen: int | None = None) -> None:
        desired = self._plans_table()
        managed = set(desired) | self._retired
        started = time.monotonic()
        try:
            operations = await self._reconciler.sync(desired, managed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.last_sync_error = f"{type(exc).__name__}: {exc}"
            self.events.emit(events.SyncFailed(self.last_sync_error))
        else:
            self.last_sync_error = None
            self.applied = without_refused(desired, self._refusals())
            self._retired.clear()
            self.syncs += 1
            self._schedule_retry()
            if self.events.wants(events.TableApplied):
                self.events.emit(events.TableApplied(desired, self._virtuals, operations or (),
                                                     time.monotonic() - started))
        async with self._applied_cond:
            self._applied_gen = max(self._applied_gen, self._gen if gen is None else gen)
            self._applied_cond.notify_all()

    def _refusals(self) -> list[Refusal]:
        """The entries the kernel refused and the reconciler holds back (none for a reconciler
        that does not keep them)."""
        book = getattr(self._reconciler, "refusals", None)
        return book.entries() if book is not None else []

    def _schedule_retry(self) -> None:
        """Sync again when the first refused entry's back-off ends (the reconciler tries it then)."""
        next_retry = getattr(self._reconciler, "next_retry", None)
        delay = next_retry() if next_retry is not None else None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if delay is not None and not self._stopping:
            self._retry = asyncio.get_running_loop().call_later(delay, self._mark_dirty)

    def _follow_fallbacks(self) -> None:
        """Bring each virtual's fallbackcommand in line with what the applied table says."""
        if self.last_sync_error is not None:
            return
        default = self.config.settings.fallbackcommand
        for key, plan in self._plans.items():
            self.fallback_commands.follow(key, self._virtuals[key], plan.fallback_active, default)

    # -- configuration --------------------------------------------------------------------------

    def _configure_maintenance(self, config: Config) -> None:
        reals = [(r.address, r.port) for v in config.virtuals for r in v.reals]
        self.maintenance.configure(config.settings.maintenancedir, reals)

    def _freeze(self) -> None:
        if self.freeze_gc:
            freeze_long_lived()

    def _index(self, config: Config) -> None:
        virtuals: dict[ServiceKey, Virtual] = {}
        users: dict[CheckSpec, list[tuple[ServiceKey, Real]]] = {}
        for virtual in config.virtuals:
            key = service_key(virtual)
            virtuals[key] = virtual
            for real in virtual.reals:
                users.setdefault(real.check, []).append((key, real))
        self._virtuals = virtuals
        self._users = users
        self.health.track(users)
        self._agents = {spec: reply for spec, reply in self._agents.items() if spec in users}
        self._first.expect(users, self.health)

    # -- status ----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return build_snapshot(self._snapshot_source())

    async def snapshot_sliced(self) -> Snapshot:
        """snapshot(), built in slices between which checks go on (status page, scrapes, status)."""
        return await build_snapshot_sliced(self._snapshot_source())

    def _snapshot_source(self) -> SnapshotSource:
        return SnapshotSource(
            self.config,
            self.health,
            self.applied,
            {k: p.fallback_active for k, p in self._plans.items()},
            self.maintenance.down,
            first_round_done=self.first_round.is_set(),
            last_sync_error=self.last_sync_error,
            scheduler=self.scheduler.stats(),
            at=time.time(),
            refused=tuple(self._refusals()),
            shaped=self._shaped,
        )
