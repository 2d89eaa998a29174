"""A point-in-time picture of the engine for `status`: per virtual and real, table weight and health.

Plain frozen values, built by a pure function, so the daemon can serialise
them (dataclasses.asdict) without reaching into the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from healthd.config.model import Config
from healthd.engine.events import describe
from healthd.engine.health import HealthBook, State
from healthd.engine.policy import dest_port, fallback_dest_key, service_key
from healthd.engine.scheduler import SchedulerStats
from healthd.ipvs.model import DestKey, Forward, ServiceKey, Table
from healthd.ipvs.refusals import Refusal


@dataclass(frozen=True, slots=True)
class RealStatus:
    real: str  # label, `10.0.0.2:80`
    check: str  # `negotiate http 10.0.0.2:80`
    state: str  # up | down | unknown
    since: float  # wall clock of the last state change (or of tracking start)
    weight: int | None  # weight in the applied table; None = not in the table
    maintenance: bool
    consecutive_failures: int
    last_ok: bool | None  # None: never checked
    last_detail: str
    last_latency: float | None  # seconds
    last_at: float | None  # wall clock of the last verdict
    refused: str = ""  # the kernel's reason when it refused this real's entry (then not in the table)


@dataclass(frozen=True, slots=True)
class VirtualStatus:
    virtual: str  # label, `10.0.0.1:80` or `fwmark 7`
    service: str  # ipvsadm spelling, `TCP 10.0.0.1:80`
    in_table: bool
    fallback_active: bool
    fallback_weight: int | None  # weight of the fallback server in the applied table
    reals: tuple[RealStatus, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float
    config: str
    first_round_done: bool
    last_sync_error: str | None
    scheduler: SchedulerStats
    virtuals: tuple[VirtualStatus, ...]
    # each IPVS operation the kernel refused, in words, with its reason: retried with back-off
    refused: tuple[str, ...] = ()


def build_snapshot(
    config: Config,
    health: HealthBook,
    applied: Table,
    fallback_active: Mapping[ServiceKey, bool],
    maintenance: Set[tuple[str, int]],
    *,
    first_round_done: bool,
    last_sync_error: str | None,
    scheduler: SchedulerStats,
    at: float,
    refused: Sequence[Refusal] = (),
) -> Snapshot:
    refused_dests = {r.key: r.reason for r in refused if r.key[1] is not None}
    virtuals = []
    for virtual in config.virtuals:
        key = service_key(virtual)
        entry = applied.get(key)
        reals = []
        for real in virtual.reals:
            dkey = DestKey(real.address, dest_port(key, Forward(real.forward), real.port))
            dest = entry.dests.get(dkey) if entry is not None else None
            rec = health.get(real.check)
            last = rec.last if rec is not None else None
            reals.append(
                RealStatus(
                    real=real.label,
                    check=describe(real.check),
                    state=str(rec.state if rec is not None else State.UNKNOWN),
                    since=rec.since if rec is not None else at,
                    weight=dest.weight if dest is not None else None,
                    maintenance=(real.address, real.port) in maintenance,
                    consecutive_failures=rec.failures if rec is not None else 0,
                    last_ok=last.ok if last is not None else None,
                    last_detail=last.detail if last is not None else "",
                    last_latency=last.latency if last is not None else None,
                    last_at=rec.last_at if rec is not None and last is not None else None,
                    refused=refused_dests.get((key, dkey), ""),
                )
            )
        fkey = fallback_dest_key(virtual, config.settings)
        fdest = entry.dests.get(fkey) if entry is not None and fkey is not None else None
        active = fallback_active.get(key, False)
        virtuals.append(
            VirtualStatus(
                virtual=virtual.label,
                service=str(key),
                in_table=entry is not None,
                fallback_active=active,
                fallback_weight=fdest.weight if fdest is not None and active else None,
                reals=tuple(reals),
            )
        )
    return Snapshot(at, config.path, first_round_done, last_sync_error, scheduler, tuple(virtuals),
                    tuple(r.sentence() for r in refused))
