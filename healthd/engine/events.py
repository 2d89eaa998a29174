"""What the engine (and the daemon around it) tells its observers: one typed event per thing that happened.

Events are frozen values; observers subscribe to them on the engine's EventBus
(healthd.engine.bus). Labels come from the config objects: `event.virtual.label`,
`event.real.label`. healthd.daemon.logs.log_event turns any event into its
journal line and fields; nothing else formats events for the journal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from healthd.checks.spec import CheckSpec, CheckType, Outcome
from healthd.config.model import Config, Real, Virtual
from healthd.ipvs.model import Operation, ServiceKey, Table
from healthd.vocab import State


def describe_check(spec: CheckSpec) -> str:
    """A check in a few words: `negotiate http 10.0.0.2:80`, `connect 10.0.0.2:80`, `on`."""
    if not spec.type.runs:
        return str(spec.type)
    if spec.type is CheckType.NEGOTIATE:
        return f"negotiate {spec.service} {spec.target}"
    return f"{spec.type} {spec.target}"


@dataclass(frozen=True, slots=True)
class RealChanged:
    """A real's check changed state (one event per virtual that uses the real)."""

    virtual: Virtual
    real: Real
    check: CheckSpec
    old: State
    new: State
    outcome: Outcome | None
    at: float  # wall clock


@dataclass(frozen=True, slots=True)
class CheckDone:
    """One check run gave its verdict. Built only while someone subscribed to CheckDone by name.

    `uses` are the (service, real) pairs that share this check identity; the engine's own
    list, not a copy: read it, never keep or change it.
    """

    check: CheckSpec
    outcome: Outcome
    uses: Sequence[tuple[ServiceKey, Real]]
    at: float  # wall clock


@dataclass(frozen=True, slots=True)
class MaintenanceChanged:
    virtual: Virtual
    real: Real
    in_maintenance: bool


@dataclass(frozen=True, slots=True)
class FallbackChanged:
    """No real of the virtual can take traffic (active) or one can again."""

    virtual: Virtual
    active: bool


@dataclass(frozen=True, slots=True)
class CommandFinished:
    """A fallbackcommand ran (or could not)."""

    virtual: Virtual
    argv: tuple[str, ...]
    returncode: int | None
    output: str
    error: str | None


@dataclass(frozen=True, slots=True)
class TableApplied:
    """A desired table reached the kernel: every sync that succeeded, with what it changed."""

    table: Table  # the whole desired table, as applied
    virtuals: Mapping[ServiceKey, Virtual]
    operations: Sequence[Operation]  # what this sync changed (empty: already in line)
    duration: float  # seconds the sync took

    def can_serve(self, key: ServiceKey) -> bool:
        """Some real or the fallback server of this virtual is in the table with a weight."""
        entry = self.table.get(key)
        return entry is not None and any(dest.weight > 0 for dest in entry.dests.values())


@dataclass(frozen=True, slots=True)
class SyncFailed:
    """The desired table could not be applied; the engine retries."""

    error: str


@dataclass(frozen=True, slots=True)
class OperationRefused:
    """The kernel refused one IPVS operation (the reconciler retries or reports SyncFailed)."""

    operation: Operation
    error: str
    errno: int  # 0 when the backend gave none


@dataclass(frozen=True, slots=True)
class ReloadDone:
    """A reload finished (published by the daemon): `config` is the one now running."""

    path: str
    ok: bool
    config: Config  # the new one when ok, else the previous one, still running
    issues: tuple[str, ...]  # FILE:LINE problems of the new file (empty when it was valid)
    outcome: str  # one sentence: "reloaded PATH: ..." or "reload failed: ...; still running ..."
    duration: float  # seconds


@dataclass(frozen=True, slots=True)
class Notice:
    """Anything else worth one log line (unreadable maintenancedir, names not resolved, ...)."""

    message: str


Event = (RealChanged | CheckDone | MaintenanceChanged | FallbackChanged | CommandFinished | TableApplied
         | SyncFailed | OperationRefused | ReloadDone | Notice)

# Events an observer gets when it names no kinds. CheckDone is left out: one per check
# run (10,000 a second) is built only for an observer that asks for it by name.
ROUTINE: tuple[type[Event], ...] = (RealChanged, MaintenanceChanged, FallbackChanged, CommandFinished,
                                    TableApplied, SyncFailed, OperationRefused, ReloadDone, Notice)
