"""First-round tracking: the moment every scheduled check has given one verdict and that table is applied.

The daemon sends READY=1 (and `systemctl start` returns) only then, so that right
after start-up the table lists exactly the reals that answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from healthd.checks.spec import CheckSpec
from healthd.engine.health import HealthBook


class FirstRound:
    """Which checks still owe their first verdict; `done` is set once their table is applied."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.pending = True  # until the table that follows the last first verdict is applied
        self._awaiting: set[CheckSpec] = set()

    def expect(self, specs: Iterable[CheckSpec], health: HealthBook) -> None:
        """Wait for every scheduled check that never gave a verdict (checktype on/off are never run)."""
        if self.pending:
            self._awaiting = {s for s in specs if s.type.runs and _never_checked(health, s)}

    def heard(self, spec: CheckSpec) -> bool:
        """A verdict for `spec` arrived; True when it was the last one awaited."""
        if not self.pending or spec not in self._awaiting:
            return False
        self._awaiting.discard(spec)
        return not self._awaiting

    @property
    def complete(self) -> bool:
        """Every first verdict is in, but the table with them may not be applied yet."""
        return self.pending and not self._awaiting

    def applied(self) -> None:
        """The table that holds every first verdict is applied: the first round is done."""
        self.pending = False
        self.done.set()


def _never_checked(health: HealthBook, spec: CheckSpec) -> bool:
    record = health.get(spec)
    return record is None or record.checks == 0
