"""Health of every check identity: a tiny state machine fed with check outcomes, no I/O.

A check identity (a CheckSpec) is "unknown" until its first verdict: it leaves
that state on its first success (up) or once `failurecount` consecutive failures
accumulate (down). After that, `failurecount` consecutive failures take it down
and one success brings it back up, as in ldirectord.

Unknown is not down: a real whose check never ran is never given traffic, but
policy may keep an entry the kernel already had while its first checks run, and
a virtual's fallback waits for evidence before switching on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from healthd.checks.spec import CheckSpec, CheckType, Outcome
from healthd.vocab import State


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state of one check identity."""

    spec: CheckSpec
    old: State
    new: State
    outcome: Outcome | None  # the verdict that caused it; None for a forced change
    at: float  # wall-clock time (time.time())


class Record:
    """The mutable health of one identity. Read it, never write it outside HealthBook."""

    __slots__ = ("checks", "failures", "last", "last_at", "since", "state")

    def __init__(self, since: float) -> None:
        self.state = State.UNKNOWN
        self.failures = 0  # consecutive failures
        self.since = since  # when `state` was entered (wall clock)
        self.last: Outcome | None = None
        self.last_at = 0.0  # when `last` arrived (wall clock)
        self.checks = 0  # verdicts received


def fixed_state(spec: CheckSpec) -> State | None:
    """The state of a checktype that is never run: `on` is always up, `off` never known."""
    if spec.type is CheckType.ON:
        return State.UP
    if spec.type is CheckType.OFF:
        return State.UNKNOWN
    return None


class HealthBook:
    """Health records of every identity in the configuration."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._records: dict[CheckSpec, Record] = {}

    def track(self, specs: Iterable[CheckSpec]) -> None:
        """Keep the records of `specs` that exist, create the new ones, forget every other."""
        now = self._clock()
        old = self._records
        new: dict[CheckSpec, Record] = {}
        for spec in specs:
            rec = old.get(spec)
            if rec is None:
                rec = Record(now)
                fixed = fixed_state(spec)
                if fixed is not None:
                    rec.state = fixed
            new[spec] = rec
        self._records = new

    def record(self, spec: CheckSpec, outcome: Outcome) -> Transition | None:
        """Feed one verdict; returns the transition it caused, if any. Unknown specs are ignored."""
        rec = self._records.get(spec)
        if rec is None:
            return None
        now = self._clock()
        rec.last = outcome
        rec.last_at = now
        rec.checks += 1
        old = rec.state
        if outcome.ok:
            rec.failures = 0
            new = State.UP
        else:
            rec.failures += 1
            new = State.DOWN if rec.failures >= spec.failurecount or old is State.DOWN else old
        if new is old:
            return None
        rec.state = new
        rec.since = now
        return Transition(spec, old, new, outcome, now)

    def state(self, spec: CheckSpec) -> State:
        """Current state; UNKNOWN for an identity not tracked."""
        rec = self._records.get(spec)
        return State.UNKNOWN if rec is None else rec.state

    def get(self, spec: CheckSpec) -> Record | None:
        return self._records.get(spec)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, spec: object) -> bool:
        return spec in self._records
