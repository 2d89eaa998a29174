"""Builds the real parts the daemon runs: the IPVS backend chosen on the command line and the engine.

The only module that knows the constructors of healthd.ipvs and healthd.engine,
so that lifecycle.py stays testable with fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from healthd.config.model import Config
from healthd.daemon.lifecycle import EngineLike, StateChange
from healthd.ipvs.backend import Backend

if TYPE_CHECKING:
    from healthd.daemon.engine_adapter import Observer

IPVS_KINDS = ("netlink", "memory")


async def make_backend(kind: str) -> Backend:
    """The IPVS table: the kernel's (netlink) or healthd's in-memory one. Never chosen silently."""
    if kind == "memory":
        from healthd.ipvs.memory import MemoryTable

        return MemoryTable()
    if kind == "netlink":
        from healthd.ipvs.netlink import NetlinkTable

        return await NetlinkTable.open()
    raise ValueError(f"unknown IPVS table {kind!r}: use one of {', '.join(IPVS_KINDS)}")


def engine_factory(
    backend: Backend, observer: Observer | None = None
) -> Callable[[Config, Callable[[StateChange], None]], EngineLike]:
    """A factory the Daemon calls with the config and its state-change hook."""

    def build(config: Config, on_change: Callable[[StateChange], None]) -> EngineLike:
        from healthd.daemon.engine_adapter import EngineAdapter

        return EngineAdapter(config, backend, on_change, observer)

    return build
