"""Feeds Telemetry from today's engine: thin wrappers around the check runner, IPVS table and reconciler.

The engine has no observer API for per-check outcomes, IPVS operation results or
sync timings yet; these wrappers sit where the daemon builds those parts and
count what passes through, without changing what the engine sees.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from healthd.checks.spec import CheckSpec, Outcome
from healthd.config.model import Real, Virtual
from healthd.engine import events
from healthd.engine.policy import dest_port, service_key
from healthd.ipvs.backend import AlreadyExists, Backend, IPVSError, NotFound
from healthd.ipvs.model import DestKey, Forward, Operation, Table
from healthd.ipvs.reconcile import Reconciler
from healthd.web.telemetry import Telemetry


def ipvs_labels(virtual: Virtual, real: Real) -> tuple[str, str]:
    """(virtual, real) as `ipvsadm -Ln` writes them: ("TCP 10.0.0.1:80", "10.0.0.2:80")."""
    key = service_key(virtual)
    return str(key), str(DestKey(real.address, dest_port(key, Forward(real.forward), real.port)))


def op_kind(op: Operation) -> str:
    """AddService -> add_service."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", type(op).__name__).lower()


def op_result(error: IPVSError | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, AlreadyExists):
        return "exists"
    if isinstance(error, NotFound):
        return "not_found"
    return "failed"


class ObservedRunner:
    """A check runner that counts every verdict's duration by check type and result."""

    def __init__(self, runner: object, telemetry: Telemetry) -> None:
        self._run = runner.run  # type: ignore[attr-defined]
        self._telemetry = telemetry

    async def run(self, spec: CheckSpec) -> Outcome:
        outcome: Outcome = await self._run(spec)
        self._telemetry.check_done(spec, outcome)
        return outcome


class ObservedBackend:
    """An IPVS table that counts every operation by kind and result."""

    def __init__(self, backend: Backend, telemetry: Telemetry) -> None:
        self._backend = backend
        self._telemetry = telemetry

    async def dump(self) -> Table:
        return await self._backend.dump()

    async def apply(self, op: Operation) -> None:
        try:
            await self._backend.apply(op)
        except IPVSError as exc:
            self._telemetry.ipvs_results([op_kind(op)], [op_result(exc)])
            raise
        self._telemetry.ipvs_results([op_kind(op)], ["ok"])

    async def apply_all(self, ops: Sequence[Operation]) -> list[IPVSError | None]:
        results = await self._backend.apply_all(ops)
        self._telemetry.ipvs_results((op_kind(op) for op in ops), (op_result(r) for r in results))
        return results

    async def close(self) -> None:
        await self._backend.close()


class ObservedReconciler(Reconciler):
    """The reconciler, timing every sync."""

    def __init__(self, backend: Backend, telemetry: Telemetry) -> None:
        super().__init__(ObservedBackend(backend, telemetry))
        self._telemetry = telemetry

    async def sync(self, desired: Table, managed: object) -> None:  # type: ignore[override]
        started = time.monotonic()
        ok = False
        try:
            await super().sync(desired, managed)  # type: ignore[arg-type]
            ok = True
        finally:
            self._telemetry.sync_done(time.monotonic() - started, ok)


def count_transitions(telemetry: Telemetry) -> Callable[[events.Event], None]:
    """An observer of engine events that counts each real's state changes."""

    def observe(event: events.Event) -> None:
        if isinstance(event, events.RealChanged):
            telemetry.real_changed(*ipvs_labels(event.virtual, event.real))

    return observe
