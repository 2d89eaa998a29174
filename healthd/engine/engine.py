"""The engine: check verdicts in, a reconciled IPVS table out.

    outcomes -> HealthBook -> (a state changed) -> coalesce a few ms -> policy -> Reconciler.sync

One applier task owns every call to the reconciler, so syncs never overlap and a
burst of state changes becomes one sync. Policy is recomputed only for the
virtuals a change touched; the reconciler still gets the whole desired table.
The daemon drives it: start(), reload(config), stop(cleanstop), snapshot(),
`first_round` (set once every check gave a verdict and the table was applied)
and the `on_event` hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from typing import Protocol

from healthd.checks.spec import CheckSpec, Outcome
from healthd.config.model import Config, Real, Virtual
from healthd.engine import events
from healthd.engine.commands import CommandQueue, CommandResult, fallback_argv
from healthd.engine.health import HealthBook, State
from healthd.engine.maintenance import MaintenanceDir, resolve_names
from healthd.engine.policy import VirtualPlan, fallback_dest_key, plan_virtual, service_key
from healthd.engine.scheduler import Scheduler
from healthd.engine.snapshot import Snapshot, build_snapshot
from healthd.ipvs.model import Entry, ServiceKey, Table
from healthd.ipvs.refusals import Refusal, without_refused

log = logging.getLogger("healthd.engine")


class Runner(Protocol):
    async def run(self, spec: CheckSpec) -> Outcome: ...


class Syncer(Protocol):
    """What the engine needs of healthd.ipvs.reconcile.Reconciler."""

    backend: object

    async def sync(self, desired: Table, managed: frozenset[ServiceKey] | set[ServiceKey]) -> None: ...


class Engine:
    """Checks every real of a Config and keeps the IPVS table in line with their health."""

    def __init__(
        self,
        config: Config,
        runner: Runner,
        reconciler: Syncer,
        *,
        on_event: Callable[[events.Event], None] | None = None,
        coalesce: float = 0.015,
        retry: float = 1.0,
        maintenance_period: float = 1.0,
        command_timeout: float = 30.0,
        resolve_deadline: float = 5.0,
        resolver: Callable[[str], str | None] | None = None,
        freeze_gc: bool = True,
        resync_interval: float | None = 60.0,
    ) -> None:
        self.config = config
        self._runner = runner
        self._reconciler = reconciler
        self._on_event = on_event
        self.coalesce = coalesce
        self.retry = retry
        self.maintenance_period = maintenance_period
        self.resolve_deadline = resolve_deadline
        self._resolver = resolver
        self.freeze_gc = freeze_gc
        self.resync_interval = resync_interval  # seconds between drift repairs; None: never
        self.health = HealthBook()
        self.scheduler = Scheduler(runner.run, self._on_outcome)
        self.commands = CommandQueue(command_timeout)
        self.first_round = asyncio.Event()
        self.last_sync_error: str | None = None
        self.syncs = 0

        self._virtuals: dict[ServiceKey, Virtual] = {}
        self._users: dict[CheckSpec, list[tuple[ServiceKey, Real]]] = {}
        self._plans: dict[ServiceKey, VirtualPlan] = {}
        self._adopted: Table = {}
        self._retired: set[ServiceKey] = set()  # left the config: removed at the next sync
        self._dirty: set[ServiceKey] = set()
        self._awaiting_first: set[CheckSpec] = set()
        self._first_pending = True
        self._command_state: dict[ServiceKey, str] = {}  # last fallbackcommand action run
        self._fallback_applied: dict[ServiceKey, bool] = {}
        self.applied: Table = {}  # the last desired table that synced without error
        self._maint: MaintenanceDir | None = None
        self._hostnames: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._gen = 0  # bumps on every change that needs a sync
        self._applied_gen = 0
        self._applied_cond = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._retry: asyncio.TimerHandle | None = None  # wakes the applier when a refused entry is due
        self._resolving: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt the kernel table, apply the first desired table, start checking.

        Raises what the reconciler raises when the very first sync fails: without a
        table to manage the daemon should not claim to be running.
        """
        if self._started:
            raise RuntimeError("engine already started")
        self._started = True
        self._adopted = await self._dump()
        self._index(self.config)
        self._setup_maintenance(self.config)
        self._replan(set(self._virtuals))
        await self._sync_now()
        if self.last_sync_error is not None:
            raise RuntimeError(f"cannot apply the IPVS table: {self.last_sync_error}")
        self._run_fallback_commands()
        self._freeze()
        self.scheduler.start(self._users)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._apply_loop(), name="healthd-apply"))
        if self._maint is not None:
            self._tasks.append(loop.create_task(self._maintenance_loop(), name="healthd-maintenance"))
        self._check_first_round()

    async def reload(self, config: Config) -> None:
        """Switch to a new config; every check identity that did not change keeps its state."""
        if not self._started or self._stopping:
            raise RuntimeError("engine not running")
        old_virtuals = self._virtuals
        old_keys = set(old_virtuals)
        with contextlib.suppress(Exception):  # no fresh view: adopt from the old one
            self._adopted = await self._dump()
        self.config = config
        self._index(config)
        gone = old_keys - set(self._virtuals)
        self._retired |= gone
        for key in gone:
            self._plans.pop(key, None)
            if self._command_state.pop(key, None) == "start":
                self._submit_command(key, old_virtuals[key], "stop")
        self._setup_maintenance(config)
        self.scheduler.update(self._users)
        self._replan(set(self._virtuals))
        self._mark_dirty()
        self._freeze()
        if self._maint is not None and not any(t.get_name() == "healthd-maintenance" for t in self._tasks):
            self._tasks.append(
                asyncio.get_running_loop().create_task(self._maintenance_loop(), name="healthd-maintenance")
            )

    async def stop(self, cleanstop: bool | None = None, command_wait: float = 35.0) -> None:
        """Stop checking; remove managed services (cleanstop); run `fallbackcommand stop`.

        cleanstop None: each virtual's own `cleanstop` setting; True: remove every
        managed service; False: leave the table as it is.
        """
        if self._stopping:
            return
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()
        await self.scheduler.stop()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        if self._resolving is not None:
            self._resolving.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        remove = {
            key for key, v in self._virtuals.items() if (v.cleanstop if cleanstop is None else cleanstop)
        }
        if remove or self._retired:
            desired = {k: e for k, e in self._plans_table().items() if k not in remove}
            managed = remove | self._retired
            try:
                await self._reconciler.sync(desired, managed)
                self.applied = desired
            except Exception as exc:
                self._emit(events.SyncFailed(f"{type(exc).__name__}: {exc}"))
        for key, virtual in self._virtuals.items():
            if self._command_state.get(key) == "start":
                self._submit_command(key, virtual, "stop")
        await self.commands.drain(command_wait)

    async def flush(self) -> None:
        """Wait until every change made so far is applied (or failed to apply)."""
        target = self._gen
        async with self._applied_cond:
            await self._applied_cond.wait_for(lambda: self._applied_gen >= target or self._stopping)

    # -- inputs ---------------------------------------------------------------------------------

    def _on_outcome(self, spec: CheckSpec, outcome: Outcome) -> None:
        transition = self.health.record(spec, outcome)
        if self._first_pending and spec in self._awaiting_first:
            self._awaiting_first.discard(spec)
            if not self._awaiting_first:
                self._mark_dirty()
        if transition is None:
            return
        dirty = self._dirty
        for key, real in self._users.get(spec, ()):
            dirty.add(key)
            self._emit(
                events.RealChanged(
                    self._virtuals[key], real, spec, transition.old, transition.new, outcome, transition.at
                )
            )
        self._mark_dirty()

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
            first = self._first_pending and not self._awaiting_first
            gen = self._gen
            dirty, self._dirty = self._dirty, set()
            self._replan(dirty)
            await self._sync_now(gen)
            self._run_fallback_commands()
            if first:
                self._first_pending = False
                self.first_round.set()
            if self.last_sync_error is not None:
                await asyncio.sleep(self.retry)
                self._wake.set()

    async def _resync(self) -> None:
        """Repair drift (someone ran ipvsadm by hand) against the last desired table."""
        resync = getattr(self._reconciler, "resync", None)
        if resync is None or self.last_sync_error is not None:
            return
        try:
            await resync()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._emit(events.SyncFailed(f"resync: {type(exc).__name__}: {exc}"))

    def _replan(self, keys: set[ServiceKey]) -> None:
        settings = self.config.settings
        lookup = self.health.state
        maintenance = self._maint.down if self._maint is not None else frozenset()
        for key in keys:
            virtual = self._virtuals.get(key)
            if virtual is None:
                continue
            previous = self._plans.get(key)
            was_active = previous.fallback_active if previous else self._adopted_fallback(virtual, key)
            plan = plan_virtual(virtual, settings, lookup, maintenance, self._adopted.get(key), was_active)
            self._plans[key] = plan
            if previous is not None and previous.fallback_active != plan.fallback_active:
                self._emit(events.FallbackChanged(virtual, plan.fallback_active))

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
        try:
            await self._reconciler.sync(desired, managed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.last_sync_error = f"{type(exc).__name__}: {exc}"
            self._emit(events.SyncFailed(self.last_sync_error))
        else:
            self.last_sync_error = None
            self.applied = without_refused(desired, self._refusals())
            self._retired.clear()
            self.syncs += 1
            self._schedule_retry()
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

    def _run_fallback_commands(self) -> None:
        """Bring each virtual's fallbackcommand in line with what the applied table says."""
        if self.last_sync_error is not None:
            return
        settings = self.config.settings
        for key, plan in self._plans.items():
            virtual = self._virtuals[key]
            action = "start" if plan.fallback_active else "stop"
            # Only a fallback that was started is ever stopped: a start-up with reals up runs nothing.
            if self._command_state.get(key, "stop") == action:
                continue
            if virtual.fallbackcommand or settings.fallbackcommand:
                self._submit_command(key, virtual, action)
            self._command_state[key] = action

    def _submit_command(self, key: ServiceKey, virtual: Virtual, action: str) -> None:
        command = virtual.fallbackcommand or self.config.settings.fallbackcommand
        self._command_state[key] = action
        if not command:
            return
        try:
            argv = fallback_argv(command, action, virtual)
        except ValueError as exc:
            self._emit(events.CommandFinished(virtual, (command,), None, "", f"cannot parse command: {exc}"))
            return
        task = self.commands.submit(key, argv)
        task.add_done_callback(lambda t: self._command_done(virtual, t))

    def _command_done(self, virtual: Virtual, task: asyncio.Task[CommandResult]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        r = task.result()
        self._emit(events.CommandFinished(virtual, r.argv, r.returncode, r.output, r.error))

    # -- maintenance ------------------------------------------------------------------------

    def _setup_maintenance(self, config: Config) -> None:
        path = config.settings.maintenancedir
        reals = [(r.address, r.port) for v in config.virtuals for r in v.reals]
        if path is None:
            self._maint = None
            return
        if self._maint is None or self._maint.path != path:
            self._maint = MaintenanceDir(path, reals, self._hostnames)
        else:
            self._maint.set_reals(reals, self._hostnames)
        self._maint.scan()
        self._maintenance_changed()  # reals already in maintenance at start (or reload) are reported
        unresolved = {r[0] for r in reals} - set(self._hostnames)
        if unresolved:
            if self._resolving is not None:
                self._resolving.cancel()
            self._resolving = asyncio.get_running_loop().create_task(self._resolve(unresolved, reals))

    async def _resolve(self, addresses: set[str], reals: list[tuple[str, int]]) -> None:
        kwargs = {"lookup": self._resolver} if self._resolver is not None else {}
        names = await resolve_names(addresses, deadline=self.resolve_deadline, **kwargs)
        self._hostnames.update(names)
        missing = len(addresses) - len(names)
        if missing:
            self._emit(events.Notice(f"maintenancedir: no host name found for {missing} real address(es)"))
        if self._maint is not None:
            self._maint.set_reals(reals, self._hostnames)
            self._maintenance_changed()

    async def _maintenance_loop(self) -> None:
        reported: str | None = None
        while not self._stopping and self._maint is not None:
            if self._maint.scan():
                self._maintenance_changed()
            if self._maint.error != reported:
                reported = self._maint.error
                if reported:
                    self._emit(events.Notice(reported))
            await asyncio.sleep(self.maintenance_period)

    _maint_reported: frozenset[tuple[str, int]] = frozenset()

    def _maintenance_changed(self) -> None:
        down = self._maint.down if self._maint is not None else frozenset()
        changed = down ^ self._maint_reported
        self._maint_reported = down
        if not changed:
            return
        for key, virtual in self._virtuals.items():
            for real in virtual.reals:
                if (real.address, real.port) in changed:
                    self._dirty.add(key)
                    self._emit(events.MaintenanceChanged(virtual, real, (real.address, real.port) in down))
        self._mark_dirty()

    # -- helpers ------------------------------------------------------------------------------

    def _freeze(self) -> None:
        """Take the long-lived objects (config, specs, plans: ~100 per real) out of the collector's sight.

        With 10,000 reals every full collection walks these objects again (25 to 100 ms, growing,
        measured with bench/engine.py); frozen, they are never walked. The model is a tree of
        frozen dataclasses without cycles, so an old config is still freed by reference counting
        after a reload; only the young generations are collected first (a full collection of
        10,000 reals stalls the loop for over half a second).
        """
        if not self.freeze_gc:
            return
        gc.unfreeze()
        gc.collect(1)
        gc.freeze()

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
        if self._first_pending:
            self._awaiting_first = {s for s in users if self.scheduler_wants(s) and self._never_checked(s)}

    def _never_checked(self, spec: CheckSpec) -> bool:
        rec = self.health.get(spec)
        return rec is None or rec.checks == 0

    @staticmethod
    def scheduler_wants(spec: CheckSpec) -> bool:
        return spec.type not in ("on", "off")

    def _check_first_round(self) -> None:
        if self._first_pending and not self._awaiting_first:
            self._mark_dirty()

    async def _dump(self) -> Table:
        backend = getattr(self._reconciler, "backend", None)
        if backend is None:
            return {}
        return await backend.dump()  # type: ignore[no-any-return]

    def _emit(self, event: events.Event) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("on_event hook failed for %r", event)

    # -- status ----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        maintenance = self._maint.down if self._maint is not None else frozenset()
        return build_snapshot(
            self.config,
            self.health,
            self.applied,
            {k: p.fallback_active for k, p in self._plans.items()},
            maintenance,
            first_round_done=self.first_round.is_set(),
            last_sync_error=self.last_sync_error,
            refused=tuple(self._refusals()),
            scheduler=self.scheduler.stats(),
            at=time.time(),
        )

    def state_of(self, spec: CheckSpec) -> State:
        return self.health.state(spec)
