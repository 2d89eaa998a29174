"""Reconcile the kernel's IPVS table with the desired one: a pure diff, then an applier.

Interface used by the engine:

    reconciler = Reconciler(backend)
    table = await reconciler.dump()           # the kernel's table as it is now (adopted at start)
    ops = await reconciler.sync(desired, managed)   # converge; touches only `managed` services
    await reconciler.resync()                 # full re-dump + repair of drift

Every operation the kernel refuses is passed to `on_refused` (the engine publishes it).

`desired` holds the services healthd wants and their destinations; `managed`
is every ServiceKey healthd owns (desired ones plus any it must remove, e.g.
after a reload dropped a virtual). Services outside `managed` are never touched.

Changing a service's settings edits it in place (IPVS "set"): deleting and re-adding a live
service would drop every connection through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence, Set

from healthd.ipvs.backend import AlreadyExists, Backend, IPVSError, NotFound
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
    ServiceKey,
    Table,
    describe_op,
)

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
        want = desired.get(key)
        have = actual.get(key)
        if want is None:
            if have is not None:
                removed.append(DeleteService(key))
            continue
        service = want.service.normalized()
        if have is None:
            ops.append(AddService(service))
            have_dests: dict[DestKey, Dest] = {}
        else:
            if have.service.normalized() != service:
                ops.append(EditService(service))
            have_dests = dict(have.dests)
        adds: list[Operation] = []
        edits: list[Operation] = []
        for dkey in sorted(want.dests):
            dest = want.dests[dkey]
            current = have_dests.pop(dkey, None)
            if current is None:
                adds.append(AddDest(key, dest))
            elif current != dest:  # Dest equality leaves out `readd`, only the desired side has it
                edits.append(EditDest(key, dest))
        ops += adds + edits + [DeleteDest(key, dkey) for dkey in sorted(have_dests)]
    return ops + removed


Sleep = Callable[[float], Awaitable[None]]
OnRefused = Callable[[Operation, IPVSError], None]


class Reconciler:
    """Keeps the managed part of a table equal to the last desired state it was given."""

    def __init__(self, backend: Backend, *, attempts: int = 5, backoff: float = 0.1, max_backoff: float = 5.0,
                 sleep: Sleep = asyncio.sleep, on_refused: OnRefused | None = None) -> None:
        self.backend = backend
        self.on_refused = on_refused
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._desired: Table = {}
        self._managed: frozenset[ServiceKey] = frozenset()
        # real servers seen in the kernel, for readdquiescent=no: a quiesced real that was
        # there and then vanished (deleted by hand) stays out
        self._seen: set[tuple[ServiceKey, DestKey]] = set()
        self._lock = asyncio.Lock()
        self.last_ops: list[Operation] = []  # what the last convergence applied, for logs and tests

    async def dump(self) -> Table:
        """The whole table as the backend has it now."""
        return await self.backend.dump()

    async def sync(self, desired: Table, managed: Set[ServiceKey]) -> Sequence[Operation]:
        """Make the managed services equal to `desired`; the operations applied.

        Raises IPVSError if it cannot converge.
        """
        async with self._lock:
            self._desired = dict(desired)
            self._managed = frozenset(managed) | frozenset(desired)
            await self._converge()
            return tuple(self.last_ops)

    async def resync(self) -> None:
        """Re-dump the table and repair drift against the last desired state."""
        async with self._lock:
            await self._converge()

    def _effective(self, actual: Table) -> Table:
        """The desired table minus quiesced reals that must not come back (readd=False)."""
        out: dict[ServiceKey, Entry] = {}
        for key, entry in self._desired.items():
            present = actual[key].dests if key in actual else {}
            keep = {dkey: d for dkey, d in entry.dests.items()
                    if d.readd or d.weight != 0 or dkey in present or (key, dkey) not in self._seen}
            out[key] = entry if len(keep) == len(entry.dests) else Entry(entry.service, keep)
        return out

    def _remember(self, actual: Table) -> None:
        # only quiesced reals with readd=False need a memory: keep it that small (tables are large)
        seen = set()
        for key, entry in self._desired.items():
            present = actual[key].dests if key in actual else {}
            for dkey, d in entry.dests.items():
                if not d.readd and d.weight == 0 and (dkey in present or (key, dkey) in self._seen):
                    seen.add((key, dkey))
        self._seen = seen

    async def _converge(self) -> None:
        self.last_ops = []
        error: IPVSError | None = None
        for attempt in range(self.attempts):
            if attempt:
                await self._sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
            actual = await self.backend.dump()
            self._remember(actual)
            ops = diff(self._effective(actual), actual, self._managed)
            if not ops:
                return
            results = await self.backend.apply_all(ops)
            again = False
            error = None
            for op, result in zip(ops, results, strict=True):
                if result is None:
                    self.last_ops.append(op)
                    if isinstance(op, AddDest | EditDest) and not op.dest.readd and op.dest.weight == 0:
                        self._seen.add((op.service, op.dest.key))
                    continue
                if isinstance(result, NotFound) and isinstance(op, DeleteService | DeleteDest):
                    continue  # someone else removed it first: that is what we wanted
                if isinstance(result, AlreadyExists | NotFound):
                    again = True  # a race with another writer: the next dump shows what is there
                    log.info("IPVS changed under us: %s", result)
                    continue
                log.warning("IPVS: %s", result)
                if self.on_refused is not None:
                    self.on_refused(op, result)
                error = result
                again = True
            if not again:
                return
        if error is not None:
            raise IPVSError(f"IPVS table did not converge after {self.attempts} attempts; "
                            f"last error: {error}", error.errno)
        raise IPVSError(f"IPVS table did not converge after {self.attempts} attempts "
                        "(it keeps changing under us)")


__all__ = ["Reconciler", "describe_op", "diff"]
