"""What the engine tells the daemon: state changes and failures worth a log line.

The engine calls one hook, `on_event(event)`, synchronously from the event loop;
the hook must be quick (log and return). Labels come from the config objects:
`event.virtual.label`, `event.real.label`.
"""

from __future__ import annotations

from dataclasses import dataclass

from healthd.checks.spec import CheckSpec, Outcome
from healthd.config.model import Real, Virtual
from healthd.engine.health import State


def describe(spec: CheckSpec) -> str:
    """A check in a few words: `negotiate http 10.0.0.2:80`, `connect 10.0.0.2:80`, `on`."""
    if spec.type in ("on", "off"):
        return str(spec.type)
    if spec.type == "negotiate":
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
class SyncFailed:
    """The desired table could not be applied; the engine retries."""

    error: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Anything else worth one log line (unreadable maintenancedir, names not resolved, ...)."""

    message: str


@dataclass(frozen=True, slots=True)
class DepoolHeld:
    """depoolthreshold keeps a real whose check fails in the table (held), or no longer needs to."""

    virtual: Virtual
    real: Real
    held: bool
    serving_needed: int  # the floor: ceil(depoolthreshold x reals)
    failing: int  # reals of the virtual whose check fails


@dataclass(frozen=True, slots=True)
class DrainChanged:
    """A leaving real went to weight 0 to drain (draining), or left the table (not draining)."""

    virtual: Virtual
    real: str  # label: a real removed by a reload has no Real any more
    draining: bool
    reason: str  # why it leaves ("maintenance", ...), or how the drain ended
    seconds: float  # how long it drained (0 when it starts)


@dataclass(frozen=True, slots=True)
class AgentChanged:
    """A real's agent said something new (reply None: it stopped answering)."""

    virtual: Virtual
    real: Real
    reply: str | None


Event = (RealChanged | MaintenanceChanged | FallbackChanged | CommandFinished | SyncFailed | Notice
         | DepoolHeld | DrainChanged | AgentChanged)
