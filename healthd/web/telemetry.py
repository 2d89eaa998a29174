"""Counters the status document does not carry: check durations, transitions per real, IPVS operations, syncs.

An observer of the engine's typed events (attach(engine.events)), read by the
Prometheus collector; never fed from log text. Per-check events (CheckDone) are
built by the engine only while someone subscribes, so the daemon attaches this only
when --http is on; then counting costs a dict lookup and a bisect per check. Every key is built from
bounded values (check types, services, operation kinds, the configured reals), never
from free text such as an error message.
"""

from __future__ import annotations

import bisect
import errno
import re
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence

from healthd.checks.spec import CheckSpec, Outcome
from healthd.config.model import Real, Virtual
from healthd.engine import events
from healthd.engine.bus import EventBus
from healthd.engine.policy import dest_port, service_key
from healthd.ipvs.model import DestKey, Operation

# Upper bounds (seconds) for check durations: a loopback connect to a 30 s negotiate timeout.
CHECK_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Upper bounds (seconds) for one reconciler sync: one netlink batch to 10,000 reals' worth.
SYNC_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """Counts per bucket and a sum: what a Prometheus histogram needs, without its per-call lock."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = array("q", bytes(8 * (len(self.bounds) + 1)))
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound), ending with (inf, total)."""
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


def ipvs_labels(virtual: Virtual, real: Real) -> tuple[str, str]:
    """(virtual, real) as `ipvsadm -Ln` writes them: ("TCP 10.0.0.1:80", "10.0.0.2:80")."""
    key = service_key(virtual)
    return str(key), str(DestKey(real.address, dest_port(key, real.forward, real.port)))


def op_kind(op: Operation) -> str:
    """AddService -> add_service."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", type(op).__name__).lower()


def refusal(code: int) -> str:
    if code == errno.EEXIST:
        return "exists"
    if code in (errno.ENOENT, errno.ESRCH):
        return "not_found"
    return "failed"


class Telemetry:
    """What happened since start, by bounded keys."""

    def __init__(self) -> None:
        # (check type, service, "ok" | "failed") -> durations
        self.checks: dict[tuple[str, str, str], Histogram] = {}
        # (virtual as ipvsadm writes it, real as ipvsadm writes it) -> state changes
        self.transitions: Counter[tuple[str, str]] = Counter()
        # (operation kind, "ok" | "exists" | "not_found" | "failed") -> operations
        self.ipvs_ops: Counter[tuple[str, str]] = Counter()
        self.syncs: Counter[str] = Counter()  # "ok" | "failed"
        self.sync_seconds = Histogram(SYNC_BOUNDS)
        self.started = time.time()

    def check_done(self, spec: CheckSpec, outcome: Outcome) -> None:
        key = (str(spec.type), spec.service, "ok" if outcome.ok else "failed")
        histogram = self.checks.get(key)
        if histogram is None:
            histogram = self.checks[key] = Histogram(CHECK_BOUNDS)
        histogram.observe(max(outcome.latency, 0.0))

    def real_changed(self, virtual: str, real: str) -> None:
        self.transitions[virtual, real] += 1

    def ipvs_results(self, kinds: Iterable[str], results: Iterable[str]) -> None:
        for kind, result in zip(kinds, results, strict=True):
            self.ipvs_ops[kind, result] += 1

    def sync_done(self, seconds: float, ok: bool) -> None:
        self.syncs["ok" if ok else "failed"] += 1
        self.sync_seconds.observe(seconds)

    def forget_reals(self, keep: set[tuple[str, str]]) -> None:
        """Drop the counters of reals no longer configured, so the label set stays that of the config."""
        for key in [k for k in self.transitions if k not in keep]:
            del self.transitions[key]

    # -- the engine's events --------------------------------------------------------------

    def attach(self, bus: EventBus) -> None:
        bus.subscribe(self._on_check, events.CheckDone)
        bus.subscribe(self._on_event, events.RealChanged, events.TableApplied, events.SyncFailed,
                      events.OperationRefused)

    def _on_check(self, event: events.Event) -> None:
        assert isinstance(event, events.CheckDone)
        self.check_done(event.check, event.outcome)

    def _on_event(self, event: events.Event) -> None:
        match event:
            case events.RealChanged(virtual=virtual, real=real):
                self.real_changed(*ipvs_labels(virtual, real))
            case events.TableApplied(operations=operations, duration=duration):
                self.sync_done(duration, ok=True)
                kinds = [op_kind(op) for op in operations]
                self.ipvs_results(kinds, ["ok"] * len(kinds))
            case events.SyncFailed():
                self.syncs["failed"] += 1
            case events.OperationRefused(operation=operation, errno=code):
                self.ipvs_results([op_kind(operation)], [refusal(code)])
