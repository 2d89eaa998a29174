"""Which announced addresses can serve, from the table the kernel was just given.

An address is announced while at least one of its `announce=yes` virtual
services can take traffic: it is in the applied IPVS table with a real of
weight above 0, or with its fallback server (TableApplied.can_serve). "At least
one", not "all": when one port's reals fail, withdrawing the address would also
take down the ports that still work; give a service its own VIP to have it
withdrawn on its own.
"""

from __future__ import annotations

from healthd.engine.events import TableApplied


def serving(event: TableApplied) -> dict[str, bool]:
    """{address: can serve} for every address that some virtual service announces."""
    result: dict[str, bool] = {}
    for key, virtual in event.virtuals.items():
        if not virtual.announce or virtual.address is None:
            continue
        result[virtual.address] = result.get(virtual.address, False) or event.can_serve(key)
    return result
