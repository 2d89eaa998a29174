"""Reconcile the kernel's IPVS table with the desired one: a pure diff, then an applier.

Interface used by the engine (implementation lands with the IPVS issue):

    reconciler = Reconciler(backend)
    await reconciler.sync(desired, managed)   # converge; touches only `managed` services
    await reconciler.resync()                 # full re-dump + repair of drift

`desired` holds the services healthd wants and their destinations; `managed`
is every ServiceKey healthd owns (desired ones plus any it must remove, e.g.
after a reload dropped a virtual). Services outside `managed` are never touched.
"""

from __future__ import annotations

from collections.abc import Set

from healthd.ipvs.backend import Backend
from healthd.ipvs.model import Operation, ServiceKey, Table


def diff(desired: Table, actual: Table, managed: Set[ServiceKey]) -> list[Operation]:
    """The minimal ordered operations that turn `actual` into `desired` within `managed`."""
    raise NotImplementedError


class Reconciler:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def sync(self, desired: Table, managed: Set[ServiceKey]) -> None:
        raise NotImplementedError

    async def resync(self) -> None:
        raise NotImplementedError
