"""Which announced addresses can serve right now, from the config and the engine's snapshot.

An address is announced while at least one of its `announce=yes` virtual
services can take traffic: it is in the applied IPVS table with a real of
weight above 0, or with its fallback server. "At least one", not "all": when
one port's reals fail, withdrawing the address would also take down the ports
that still work; give a service its own VIP to have it withdrawn on its own.
"""

from __future__ import annotations

from healthd.config.model import Config
from healthd.engine.snapshot import Snapshot, VirtualStatus


def can_serve(status: VirtualStatus) -> bool:
    if not status.in_table:
        return False
    if status.fallback_weight:
        return True
    return any(real.weight for real in status.reals)


def serving(config: Config, snapshot: Snapshot) -> dict[str, bool]:
    """{address: can serve} for every address that some virtual service announces."""
    status = {s.virtual: s for s in snapshot.virtuals}
    result: dict[str, bool] = {}
    for virtual in config.virtuals:
        if not virtual.announce or virtual.address is None:
            continue
        current = status.get(virtual.label)
        ok = current is not None and can_serve(current)
        result[virtual.address] = result.get(virtual.address, False) or ok
    return result
