"""Reconcile the kernel's IPVS table with the desired one: a pure diff, then an applier.

Interface used by the engine:

    reconciler = Reconciler(backend)
    table = await reconciler.dump()           # the kernel's table as it is now (adopted at start)
    ops = await reconciler.sync(desired, managed)   # converge: dump, diff every `managed` service
    ops = await reconciler.update(desired, changed) # converge `changed` only, against the belief
    ops = await reconciler.resync()           # full re-dump + repair of drift (the slow clock)

The reconciler keeps a belief of the kernel's table (its last dump, with every operation the
kernel accepted since), so that `update` costs the diff of the changed services alone: one real
changing state costs the same at 100 reals as at 10,000. After an error the belief is in doubt
and the next convergence dumps again; drift `update` cannot see is `resync`'s job.

Every operation the kernel refuses is passed to `on_refused` once (the engine publishes it).

`desired` holds the services healthd wants and their destinations; `managed`
is every ServiceKey healthd owns (desired ones plus any it must remove, e.g.
after a reload dropped a virtual). Services outside `managed` are never touched.

Changing a service's settings edits it in place (IPVS "set"): deleting and re-adding a live
service would drop every connection through it.

An operation the kernel refuses (a lower threshold above the upper one: ERANGE; a scheduler
the kernel lacks) costs only its entry: the rest of the table is applied, the refusal is
logged with the kernel's reason and kept in `refusals` (for status), and the entry is tried
again with back-off at later syncs (`next_retry()` says when one is due). Only a refusal of
the whole table (no permission, no IPVS) is raised.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set

from healthd.ipvs.backend import AlreadyExists, Backend, IPVSError, NotFound, Unavailable
from healthd.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    EditDest,
    EditService,
    Entry,
    Operation,
    Service,
    ServiceKey,
    Table,
    describe_op,
)
from healthd.ipvs.refusals import Refusal, RefusalBook

log = logging.getLogger("healthd.ipvs")


def diff(desired: Table, actual: Table, managed: Set[ServiceKey]) -> list[Operation]:
    """The minimal ordered operations that turn `actual` into `desired` within `managed`.

    Order: services are added or edited first, then their real servers are added, edited
    and deleted (new ones before old ones leave, so a service is never empty in between),
    and services that are no longer wanted are deleted last.
    """
    ops: list[Operation] = []
    removed: list[Operation] = []
    for key in sorted(managed):
        diff_service(key, desired.get(key), actual.get(key), ops, removed)
    return ops + removed


def diff_service(key: ServiceKey, want: Entry | None, have: Entry | None,
                 ops: list[Operation], removed: list[Operation]) -> None:
    """`diff` for one service: its operations appended to `ops`, its deletion to `removed`.

    The cost is that of the service's own real servers (only the differing ones are sorted),
    so a sync that looks at a few services costs the same at 100 reals as at 10,000.
    """
    if want is None:
        if have is not None:
            removed.append(DeleteService(key))
        return
    service = want.service.normalized()
    wanted = want.dests
    if have is None:
        ops.append(AddService(service))
        ops += [AddDest(key, wanted[dkey]) for dkey in sorted(wanted)]
        return
    if have.service.normalized() != service:
        ops.append(EditService(service))
    present = have.dests
    adds: list[DestKey] = []
    edits: list[DestKey] = []
    for dkey, dest in wanted.items():
        current = present.get(dkey)
        if current is None:
            adds.append(dkey)
        elif current is not dest and current != dest:  # equality leaves out `readd` (desired side only)
            edits.append(dkey)
    gone = [dkey for dkey in present if dkey not in wanted] if len(present) + len(adds) > len(wanted) else []
    ops += [AddDest(key, wanted[dkey]) for dkey in sorted(adds)]
    ops += [EditDest(key, wanted[dkey]) for dkey in sorted(edits)]
    ops += [DeleteDest(key, dkey) for dkey in sorted(gone)]


Sleep = Callable[[float], Awaitable[None]]
OnRefused = Callable[[Operation, IPVSError], None]

# errors of a kernel under stress, retried at once (with the short back-off) before they count as refusals
TRANSIENT = frozenset({errno.ENOMEM, errno.ENOBUFS, errno.EAGAIN, errno.EINTR, errno.EBUSY})


class Reconciler:
    """Keeps the managed part of a table equal to the last desired state it was given.

    It keeps a belief of the managed services as the kernel holds them: the last dump, with every
    operation the kernel accepted since applied to it. `sync` re-dumps and diffs every managed
    service (start-up, adoption, after an error); `update` diffs only the services it is told
    changed against that belief, with no dump, so one real changing state costs the same at
    100 reals as at 10,000. Drift (an `ipvsadm` by hand) is invisible to `update`: `resync`,
    on the engine's slower clock, re-dumps and repairs it.
    """

    def __init__(self, backend: Backend, *, attempts: int = 5, backoff: float = 0.1, max_backoff: float = 5.0,
                 sleep: Sleep = asyncio.sleep, on_refused: OnRefused | None = None) -> None:
        self.backend = backend
        self.on_refused = on_refused
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._desired: dict[ServiceKey, Entry] = {}
        self._managed: set[ServiceKey] = set()
        # the belief: service settings and real servers as the kernel holds them; None = not known
        # (never dumped, or an error left it in doubt): the next convergence dumps
        self._services: dict[ServiceKey, Service] | None = None
        self._dests: dict[ServiceKey, dict[DestKey, Dest]] = {}
        # real servers seen in the kernel, for readdquiescent=no: a quiesced real that was
        # there and then vanished (deleted by hand) stays out. Only quiesced reals with
        # readd=False are remembered, per service (tables are large)
        self._seen: dict[ServiceKey, set[DestKey]] = {}
        self._lock = asyncio.Lock()
        self.last_ops: list[Operation] = []  # what the last convergence applied, for logs and tests
        self.refusals = RefusalBook()  # entries the kernel refused, held back until their retry
        self.dumps = 0  # full dumps taken (start-up, resyncs, retries): for tests and benchmarks

    async def dump(self) -> Table:
        """The whole table as the backend has it now."""
        return await self.backend.dump()

    def believed(self, keys: Set[ServiceKey] | None = None) -> Table | None:
        """The services (all, or those of `keys`) as the kernel holds them by the reconciler's
        belief, with no I/O; None before the first sync or after an error left it in doubt."""
        services = self._services
        if services is None:
            return None
        wanted = services if keys is None else [k for k in keys if k in services]
        return {key: Entry(services[key], dict(self._dests[key])) for key in wanted}

    async def sync(self, desired: Table, managed: Set[ServiceKey]) -> Sequence[Operation]:
        """Make the managed services equal to `desired`: dump the table, diff every managed service;
        the operations applied.

        An entry the kernel refuses is left out (see `refusals`); raises IPVSError only when the
        table as a whole is out of reach, or keeps changing under us.
        """
        async with self._lock:
            self._desired = dict(desired)
            self._managed = set(managed) | set(desired)
            await self._converge(None)
            return tuple(self.last_ops)

    async def update(self, desired: Table, changed: Set[ServiceKey]) -> Sequence[Operation]:
        """Converge only the services in `changed` (healthd's own: those of `desired`, or ones to
        remove) against the belief, with no dump; every other service of `desired` must be as
        last given. The operations applied. Before any belief (or after an error) it is `sync`.
        """
        wanted = {key: desired.get(key) for key in changed}  # read now: the caller's table moves on
        async with self._lock:
            for key, entry in wanted.items():
                self._managed.add(key)
                if entry is None:
                    self._desired.pop(key, None)
                else:
                    self._desired[key] = entry
            # entries the kernel refused are tried again when their back-off ends (held() says when)
            keys = set(wanted) | {refusal.key[0] for refusal in self.refusals.entries()}
            try:
                await self._converge(keys)
            finally:
                # a service removed now is no longer ours: a later resync leaves alone whoever makes it
                # again (as `sync` forgets the services no longer passed in `managed`)
                self._managed.difference_update(k for k, entry in wanted.items() if entry is None)
            return tuple(self.last_ops)

    async def resync(self) -> Sequence[Operation]:
        """Re-dump the table and repair drift against the last desired state; the operations applied."""
        async with self._lock:
            if not self._managed:
                self.last_ops = []
                return ()
            await self._converge(None)
            return tuple(self.last_ops)

    def next_retry(self) -> float | None:
        """Seconds until a refused entry is due for another try (sync again then); None if none is."""
        return self.refusals.next_retry()

    # -- the belief ------------------------------------------------------------------------------

    def _believe_dump(self, actual: Table) -> None:
        self._services = {key: entry.service for key, entry in actual.items()}
        self._dests = {key: dict(entry.dests) for key, entry in actual.items()}
        # where the kernel holds what is desired, the belief holds the desired object itself, so
        # that the next diff of the service finds it unchanged by identity, not field by field
        for key, entry in self._desired.items():
            present = self._dests.get(key)
            if present is None:
                continue
            for dkey, dest in entry.dests.items():
                current = present.get(dkey)
                if current is not None and current is not dest and current == dest:
                    present[dkey] = dest

    def _believe(self, op: Operation) -> None:
        """The kernel accepted `op`: the belief follows."""
        services, dests = self._services, self._dests
        if services is None:
            return
        match op:
            case AddService(service):
                services[service.key] = service.normalized()
                dests[service.key] = {}
            case EditService(service):
                services[service.key] = service.normalized()
            case DeleteService(key):
                services.pop(key, None)
                dests.pop(key, None)
            case AddDest(key, dest) | EditDest(key, dest):
                dests.setdefault(key, {})[dest.key] = dest
            case DeleteDest(key, dest_key):
                dests.get(key, {}).pop(dest_key, None)

    def _have(self, key: ServiceKey) -> Entry | None:
        assert self._services is not None
        service = self._services.get(key)
        return None if service is None else Entry(service, self._dests[key])

    def _effective(self, key: ServiceKey, present: Mapping[DestKey, Dest]) -> Entry | None:
        """The desired entry minus quiesced reals that must not come back (readd=False)."""
        entry = self._desired.get(key)
        seen = self._seen.get(key)
        if entry is None or not seen:
            return entry
        keep = {dkey: d for dkey, d in entry.dests.items()
                if d.readd or d.weight != 0 or dkey in present or dkey not in seen}
        return entry if len(keep) == len(entry.dests) else Entry(entry.service, keep)

    def _remember(self, key: ServiceKey, present: Mapping[DestKey, Dest]) -> None:
        entry = self._desired.get(key)
        seen = self._seen.get(key, set())
        now = set() if entry is None else {
            dkey for dkey, d in entry.dests.items()
            if not d.readd and d.weight == 0 and (dkey in present or dkey in seen)}
        if now:
            self._seen[key] = now
        else:
            self._seen.pop(key, None)

    def _plan(self, keys: Set[ServiceKey]) -> list[Operation]:
        """The operations that bring `keys` (sorted, as `diff` orders them) to the desired state."""
        ops: list[Operation] = []
        removed: list[Operation] = []
        dests = self._dests
        for key in sorted(keys):
            have = self._have(key)
            present = dests.get(key, {})
            self._remember(key, present)
            diff_service(key, self._effective(key, present), have, ops, removed)
        return ops + removed

    # -- converging --------------------------------------------------------------------------------

    def _wanted(self, key: tuple[ServiceKey, DestKey | None]) -> bool:
        service, dest = key
        entry = self._desired.get(service)
        return entry is not None and (dest is None or dest in entry.dests)

    def _notify(self, refusal: Refusal, error: IPVSError) -> None:
        log.warning("IPVS: %s; the rest of the table is applied, this entry is tried again later",
                    refusal.sentence())
        if self.on_refused is not None:
            try:
                self.on_refused(refusal.operation, error)
            except Exception:
                log.exception("on_refused hook failed")

    async def _converge(self, keys: set[ServiceKey] | None) -> None:
        """Converge `keys` against the belief, or (None) every managed service against a fresh dump.
        A retry always re-dumps and looks at every managed service."""
        try:
            await self._converge_attempts(keys)
        except BaseException:
            self._services = None  # what the kernel holds is in doubt: dump at the next sync
            raise

    async def _converge_attempts(self, keys: set[ServiceKey] | None) -> None:
        self.last_ops = []
        self.refusals.keep_only(self._wanted)
        for attempt in range(self.attempts):
            if attempt:
                await self._sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
            if keys is None or self._services is None or attempt:
                self.dumps += 1
                self._believe_dump(await self.backend.dump())
                keys = None
            ops = self._plan(self._managed if keys is None else keys & self._managed)
            ops = [op for op in ops if not self.refusals.held(op)]
            if not ops:
                return
            results = await self.backend.apply_all(ops)
            again = False
            for op, result in zip(ops, results, strict=True):
                if result is None:
                    self._believe(op)
                    self.last_ops.append(op)
                    if isinstance(op, AddDest | EditDest) and not op.dest.readd and op.dest.weight == 0:
                        self._seen.setdefault(op.service, set()).add(op.dest.key)
                    ended = self.refusals.accepted(op)
                    if ended is not None:
                        log.info("IPVS: %s: accepted by the kernel now", ended.what)
                    continue
                if isinstance(result, NotFound) and isinstance(op, DeleteService | DeleteDest):
                    self._believe(op)
                    continue  # someone else removed it first: that is what we wanted
                if isinstance(result, NotFound) and self.refusals.held(op):
                    continue  # its service was refused just before: it waits with it
                if isinstance(result, AlreadyExists | NotFound):
                    again = True  # a race with another writer: the next dump shows what is there
                    log.info("IPVS changed under us: %s", result)
                    continue
                if isinstance(result, Unavailable) or result.errno in (errno.EPERM, errno.EACCES):
                    raise result  # not this entry: the whole table is out of reach
                if result.errno in TRANSIENT and attempt < self.attempts - 1:
                    again = True  # the kernel under stress: try again soon, with the whole table
                    log.info("IPVS: %s (will retry)", result)
                    continue
                refusal, news = self.refusals.refuse(op, result)
                if news:
                    self._notify(refusal, result)
                else:
                    log.debug("IPVS: %s (attempt %d)", refusal.sentence(), refusal.attempts)
            if not again:
                return
        raise IPVSError(f"IPVS table did not converge after {self.attempts} attempts "
                        "(it keeps changing under us)")


__all__ = ["Reconciler", "describe_op", "diff"]
