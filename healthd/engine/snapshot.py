"""A point-in-time picture of the engine for `status`: per virtual and real, table weight and health.

Plain frozen values, built by a pure function; observers read them typed, and
`as_json` gives what `healthd status --json` prints. The builder is a generator that offers a
pause every SLICE reals, so that a 10,000-real picture can be built between checks
(build_snapshot_sliced) instead of stalling the event loop for a fifth of a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from healthd.config.model import Config
from healthd.engine.events import describe_check
from healthd.engine.health import HealthBook
from healthd.engine.policy import dest_port, fallback_dest_key, service_key
from healthd.engine.safety import Shaped
from healthd.engine.scheduler import SchedulerStats
from healthd.ipvs.model import DestKey, ServiceKey, Table
from healthd.ipvs.refusals import Refusal
from healthd.vocab import State


@dataclass(frozen=True, slots=True)
class RealStatus:
    real: str  # label, `10.0.0.2:80`
    check: str  # `negotiate http 10.0.0.2:80`
    state: State
    since: float  # wall clock of the last state change (or of tracking start)
    weight: int | None  # weight in the applied table; None = not in the table
    maintenance: bool
    consecutive_failures: int
    last_ok: bool | None  # None: never checked
    last_detail: str
    last_latency: float | None  # seconds
    last_at: float | None  # wall clock of the last verdict
    refused: str = ""  # the kernel's reason when it refused this real's entry (then not in the table)
    dest: str = ""  # the destination as `ipvsadm -Ln` writes it (`10.0.0.2:80`; gate: the VIP's port)
    checks: int = 0  # verdicts since the check identity was first tracked
    # healthd extensions (healthd.engine.safety)
    held_by_depoolthreshold: bool = False  # in the table although its check fails
    draining: bool = False  # at weight 0 until its connections end
    ramping_to: int | None = None  # slowstart: the weight the ramp ends at; None = not ramping
    agent: str | None = None  # what its agent last said, `50%`; None = no agent or no answer


@dataclass(frozen=True, slots=True)
class VirtualStatus:
    virtual: str  # label, `10.0.0.1:80` or `fwmark 7`
    service: str  # ipvsadm spelling, `TCP 10.0.0.1:80`
    in_table: bool
    fallback_active: bool
    fallback_weight: int | None  # weight of the fallback server in the applied table
    reals: tuple[RealStatus, ...]
    scheduler: str = ""  # `wrr`, ...
    fallback: str | None = None  # the fallback server as `ipvsadm -Ln` writes it, when one is configured
    serving_needed: int = 0  # depoolthreshold: reals kept serving even if their checks fail
    held_by_depoolthreshold: int = 0  # how many reals that floor holds in right now
    draining_removed: tuple[str, ...] = ()  # reals removed by a reload, draining (labels)


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


SLICE = 250  # reals between two pauses of a sliced build (about 5 ms of work)


@dataclass(frozen=True, slots=True)
class SnapshotSource:
    """What a snapshot is built from: the engine's state at one moment (references, never copies)."""

    config: Config
    health: HealthBook
    applied: Table
    fallback_active: Mapping[ServiceKey, bool]
    maintenance: Set[tuple[str, int]]
    first_round_done: bool
    last_sync_error: str | None
    scheduler: SchedulerStats
    at: float
    refused: Sequence[Refusal] = ()
    shaped: Mapping[ServiceKey, Shaped] | None = None


def build_snapshot(source: SnapshotSource) -> Snapshot:
    return _snapshot(source, [v for v in _virtuals(source) if v is not None])


async def build_snapshot_sliced(source: SnapshotSource) -> Snapshot:
    """build_snapshot, yielding to the event loop every SLICE reals.

    Consistent enough for a status page: `config` and `applied` are replaced, never
    mutated, so the references held here stay whole; each real's health record is
    read at once, while other reals' may move on between slices.
    """
    virtuals = []
    for item in _virtuals(source):
        if item is None:
            await asyncio.sleep(0)
        else:
            virtuals.append(item)
    return _snapshot(source, virtuals)


def _snapshot(source: SnapshotSource, virtuals: list[VirtualStatus]) -> Snapshot:
    return Snapshot(source.at, source.config.path, source.first_round_done, source.last_sync_error,
                    source.scheduler, tuple(virtuals), tuple(r.sentence() for r in source.refused))


def _virtuals(source: SnapshotSource) -> Iterator[VirtualStatus | None]:
    """Every virtual's status in config order, with None between slices of SLICE reals."""
    config, health, applied, at = source.config, source.health, source.applied, source.at
    fallback_active, maintenance, refused, shaped = (
        source.fallback_active, source.maintenance, source.refused, source.shaped)
    refused_dests = {r.key: r.reason for r in refused if r.key[1] is not None}
    budget = SLICE
    for virtual in config.virtuals:
        key = service_key(virtual)
        entry = applied.get(key)
        safety = shaped.get(key) if shaped is not None else None
        reals = []
        known: set[DestKey] = set()
        for real in virtual.reals:
            budget -= 1
            if budget <= 0:
                budget = SLICE
                yield None
            dkey = DestKey(real.address, dest_port(key, real.forward, real.port))
            known.add(dkey)
            reply = safety.agent.get(dkey) if safety is not None else None
            dest = entry.dests.get(dkey) if entry is not None else None
            rec = health.get(real.check)
            last = rec.last if rec is not None else None
            reals.append(
                RealStatus(
                    real=real.label,
                    dest=str(dkey),
                    check=describe_check(real.check),
                    state=rec.state if rec is not None else State.UNKNOWN,
                    since=rec.since if rec is not None else at,
                    weight=dest.weight if dest is not None else None,
                    maintenance=(real.address, real.port) in maintenance,
                    consecutive_failures=rec.failures if rec is not None else 0,
                    last_ok=last.ok if last is not None else None,
                    last_detail=last.detail if last is not None else "",
                    last_latency=last.latency if last is not None else None,
                    last_at=rec.last_at if rec is not None and last is not None else None,
                    refused=refused_dests.get((key, dkey), ""),
                    checks=rec.checks if rec is not None else 0,
                    held_by_depoolthreshold=safety is not None and dkey in safety.held,
                    draining=safety is not None and dkey in safety.state.draining,
                    ramping_to=safety.ramping.get(dkey) if safety is not None else None,
                    agent=str(reply) if reply is not None else None,
                )
            )
        fkey = fallback_dest_key(virtual, config.settings)
        fdest = entry.dests.get(fkey) if entry is not None and fkey is not None else None
        active = fallback_active.get(key, False)
        yield VirtualStatus(
            virtual=virtual.label,
            service=str(key),
            scheduler=virtual.scheduler,
            in_table=entry is not None,
            fallback_active=active,
            fallback_weight=fdest.weight if fdest is not None and active else None,
            fallback=str(fkey) if fkey is not None else None,
            reals=tuple(reals),
            serving_needed=safety.serving_needed if safety is not None else 0,
            held_by_depoolthreshold=len(safety.held) if safety is not None else 0,
            draining_removed=tuple(
                str(k) for k in (safety.state.draining if safety is not None else ()) if k not in known
            ),
        )


def reals_up(snapshot: Snapshot) -> tuple[int, int]:
    """(reals up, reals) over every virtual of the snapshot."""
    reals = [r for v in snapshot.virtuals for r in v.reals]
    return sum(1 for r in reals if r.state is State.UP), len(reals)


def as_json(snapshot: Snapshot) -> dict[str, Any]:
    """Plain JSON values (enums as their strings); without `config`, which the daemon reports itself."""
    plain = dataclasses.asdict(snapshot)
    plain.pop("config", None)
    return plain
