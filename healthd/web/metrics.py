"""/metrics: healthd's state and counters in the Prometheus text format, written by prometheus-client.

A custom collector over the status document (the same one `healthd status --json`
gives) and Telemetry: nothing is registered globally and nothing is kept between
scrapes. Virtual and real are labelled as `ipvsadm -Ln` writes them
(virtual="TCP 10.0.0.1:80", real="10.0.0.2:80"); every label value comes from the
configuration or from a fixed vocabulary, so the series are bounded by the config.

The per-real families (four series per real) are formatted SLICE reals at a time
with a pause for the event loop in between: a family split across slices keeps one
HELP/TYPE header, so the text is what generate_latest would write for the whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from healthd.web.telemetry import Histogram, Telemetry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SLICE = 100  # reals per formatted slice (a few ms of work: generate_latest takes ~10 us a sample)

Row = tuple[str, str, dict[str, Any]]  # (virtual label, real label, the real's status)
Value = Callable[[Row, Telemetry], float | None]  # None: no sample for this real


def _state_up(row: Row, _t: Telemetry) -> float:
    return 1.0 if row[2].get("state") == "up" else 0.0


def _weight(row: Row, _t: Telemetry) -> float | None:
    weight = row[2].get("weight")
    return None if weight is None else float(weight)


def _last_check(row: Row, _t: Telemetry) -> float | None:
    return row[2].get("last_at")


def _transitions(row: Row, telemetry: Telemetry) -> float:
    return float(telemetry.transitions.get((row[0], row[1]), 0))


# name, kind, help, value
REAL_FAMILIES: tuple[tuple[str, str, str, Value], ...] = (
    ("healthd_real_up", "gauge", "1 when the real's check says up, 0 when down or not known yet", _state_up),
    ("healthd_real_weight", "gauge",
     "Weight of the real in the IPVS table healthd applied (no sample: not in the table)", _weight),
    ("healthd_real_last_check_timestamp_seconds", "gauge",
     "Wall-clock time of the real's last check verdict", _last_check),
    ("healthd_real_transitions", "counter", "State changes of the real's check since healthd started",
     _transitions),
)
LABELS = ("virtual", "real")


class _Collector:
    """What generate_latest asks of a registry: collect()."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def _family(name: str, kind: str, doc: str) -> Metric:
    if kind == "counter":
        return CounterMetricFamily(name, doc, labels=LABELS)
    return GaugeMetricFamily(name, doc, labels=LABELS)


def _without_header(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith(("# HELP ", "# TYPE ")):
        lines.pop(0)
    return "".join(lines)


async def rows(document: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for virtual in document.get("virtuals", []):
        label = virtual["service"]
        reals = virtual.get("reals", [])
        for start in range(0, len(reals), 10 * SLICE):
            out += [(label, real["dest"], real) for real in reals[start:start + 10 * SLICE]]
            await asyncio.sleep(0)
    return out


async def exposition(document: dict[str, Any], telemetry: Telemetry) -> bytes:
    """The whole /metrics text, built in slices of SLICE reals."""
    table = await rows(document)
    if len(telemetry.transitions) > len(table):  # counters of reals a reload removed
        telemetry.forget_reals({(row[0], row[1]) for row in table})
    parts: list[str] = []
    for name, kind, doc, value in REAL_FAMILIES:
        for start in range(0, len(table), SLICE):
            family = _family(name, kind, doc)
            for row in table[start:start + SLICE]:
                sample = value(row, telemetry)
                if sample is not None:
                    family.add_metric([row[0], row[1]], sample)
            text = generate_latest(_Collector([family])).decode()  # type: ignore[arg-type]
            parts.append(_without_header(text) if start else text)
            await asyncio.sleep(0)
    families = list(process_families(document, telemetry))
    parts.append(generate_latest(_Collector(families)).decode())  # type: ignore[arg-type]
    return "".join(parts).encode()


Series = Iterable[tuple[list[str], Histogram]]


def _histogram(name: str, doc: str, labels: list[str], series: Series) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, histogram in series:
        buckets = [(_le(bound), float(count)) for bound, count in histogram.cumulative()]
        family.add_metric(values, buckets, histogram.sum)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def process_families(document: dict[str, Any], telemetry: Telemetry) -> Iterator[Metric]:
    """The per-process families: checks, scheduler, IPVS, reconciler, configuration, fallbacks."""
    check_labels = ["check", "service", "result"]
    yield _histogram("healthd_check_duration_seconds", "Duration of check runs by check type and result",
                     check_labels, ((list(k), h) for k, h in sorted(telemetry.checks.items())))
    checks = CounterMetricFamily("healthd_checks", "Check runs by check type and result", labels=check_labels)
    for key, histogram in sorted(telemetry.checks.items()):
        checks.add_metric(list(key), float(histogram.cumulative()[-1][1]))
    yield checks

    scheduler = document.get("scheduler") or {}
    lateness = HistogramMetricFamily(
        "healthd_scheduler_lateness_seconds", "How late check runs started after their scheduled time")
    buckets = [(_le(bound), float(count)) for bound, count in scheduler.get("lateness_histogram", ())]
    if buckets:
        buckets.append(("+Inf", float(scheduler.get("lateness_count", 0))))
        lateness.add_metric([], buckets, float(scheduler.get("lateness_sum", 0.0)))
    yield lateness
    for name, field, doc in (
        ("healthd_checks_deferred", "ticks_deferred", "Check runs held back because the scheduler ran late"),
        ("healthd_checks_shed", "ticks_shed",
         "Check runs not made because the scheduler stayed late (overload)"),
        ("healthd_checks_skipped", "ticks_skipped",
         "Check runs not started: the previous run was still going"),
        ("healthd_checks_dropped", "ticks_dropped",
         "Check runs dropped because the event loop was more than an interval late"),
    ):
        yield CounterMetricFamily(name, doc, value=float(scheduler.get(field, 0)))

    operations = CounterMetricFamily("healthd_ipvs_operations", "IPVS table operations by kind",
                                     labels=["op"])
    errors = CounterMetricFamily("healthd_ipvs_operation_errors",
                                 "Failed IPVS table operations by kind and error", labels=["op", "error"])
    per_op: dict[str, int] = {}
    for (op, result), count in sorted(telemetry.ipvs_ops.items()):
        per_op[op] = per_op.get(op, 0) + count
        if result != "ok":
            errors.add_metric([op, result], float(count))
    for op, count in sorted(per_op.items()):
        operations.add_metric([op], float(count))
    yield operations
    yield errors

    syncs = CounterMetricFamily("healthd_reconciler_syncs", "Reconciler syncs of the IPVS table by result",
                                labels=["result"])
    for result in ("ok", "failed"):
        syncs.add_metric([result], float(telemetry.syncs.get(result, 0)))
    yield syncs
    yield _histogram("healthd_reconciler_sync_duration_seconds", "Duration of reconciler syncs", [],
                     [([], telemetry.sync_seconds)])

    reloads = document.get("reloads") or {}
    family = CounterMetricFamily("healthd_config_reloads", "Configuration reloads by result",
                                 labels=["result"])
    for result in ("ok", "failed"):
        family.add_metric([result], float(reloads.get(result, 0)))
    yield family
    mtime = document.get("config_mtime")
    if mtime is not None:
        yield GaugeMetricFamily("healthd_config_mtime_seconds",
                                "Modification time of the configuration file healthd runs",
                                value=float(mtime))

    fallback = GaugeMetricFamily("healthd_virtual_fallback_active",
                                 "1 when no real of the virtual is up and its fallback server serves",
                                 labels=["virtual"])
    for virtual in document.get("virtuals", []):
        fallback.add_metric([virtual["service"]], 1.0 if virtual.get("fallback_active") else 0.0)
    yield fallback
