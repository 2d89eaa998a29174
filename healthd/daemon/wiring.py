"""Builds what the daemon runs: the IPVS backend chosen on the command line, the engine, the features.

The only module that knows the constructors of healthd.ipvs, healthd.checks and
healthd.engine, so that lifecycle.py stays testable with fakes. A new daemon
feature (an observer of the engine's events) is added to features() below.
"""

from __future__ import annotations

from healthd.config.model import Config
from healthd.daemon.lifecycle import Feature
from healthd.engine.engine import Engine
from healthd.ipvs.backend import Backend

IPVS_KINDS = ("netlink", "memory")
FALLBACK_COMMAND_WAIT = 0.5  # seconds a `fallbackcommand stop` may delay the exit


async def make_backend(kind: str) -> Backend:
    """The IPVS table: the kernel's (netlink) or healthd's in-memory one. Never chosen silently."""
    if kind == "memory":
        from healthd.ipvs.memory import MemoryTable

        return MemoryTable()
    if kind == "netlink":
        from healthd.ipvs.netlink import NetlinkTable

        return await NetlinkTable.open()
    raise ValueError(f"unknown IPVS table {kind!r}: use one of {', '.join(IPVS_KINDS)}")


def build_engine(config: Config, backend: Backend) -> Engine:
    """The engine over `backend`, with healthd's check runner; refused IPVS operations become events."""
    from healthd.checks.runner import CheckRunner
    from healthd.engine import events
    from healthd.engine.bus import EventBus
    from healthd.ipvs.reconcile import Reconciler

    bus = EventBus()
    reconciler = Reconciler(
        backend, on_refused=lambda op, exc: bus.emit(events.OperationRefused(op, str(exc), exc.errno))
    )
    return Engine(config, CheckRunner(), reconciler, events=bus, command_wait=FALLBACK_COMMAND_WAIT)


def features(config: Config, ipvs: str | None = None) -> list[Feature]:
    """The daemon features to run beside the engine, each an observer of its events.

    Outputs: alert mails, monitorfile lines and the `execute=` children (started with the
    same IPVS table kind as this daemon); NotifyHooks: `notifycommand=` on state changes;
    AnnounceFeature: `announce=` routes (it does nothing, no device, until a virtual has
    announce=yes, even after a reload).
    """
    from healthd.announce.feature import AnnounceFeature
    from healthd.daemon.notify import NotifyHooks
    from healthd.daemon.outputs import Outputs

    return [Outputs(config, ipvs=ipvs), NotifyHooks(), AnnounceFeature()]
