"""healthd.web and the status document without a network: what can be decided from values alone."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from healthd.cli import UsageError, parse
from healthd.config import parse_text
from healthd.config.model import ConfigError
from healthd.daemon.status import encode
from healthd.engine.scheduler import LATENESS_BOUNDS, LatenessLog
from healthd.web import metrics
from healthd.web.server import ListenError, _Cached, parse_listen
from healthd.web.telemetry import Telemetry


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:9180", ("127.0.0.1", 9180)),
    ("[::1]:9180", ("::1", 9180)),
    ("0.0.0.0:80", ("0.0.0.0", 80)),
])
def test_listen_addresses(text: str, want: tuple[str, int]) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["9180", "localhost:9180", "127.0.0.1:0", "127.0.0.1:x", ":9180", "[::1]"])
def test_bad_listen_addresses_are_clear_errors(text: str) -> None:
    with pytest.raises(ListenError, match="--http"):
        parse_listen(text)


def test_http_option_goes_with_start() -> None:
    assert parse(["--http", "127.0.0.1:9180", "x.cf", "start"]).http == ("127.0.0.1", 9180)
    assert parse(["--http=[::1]:1", "start"]).http == ("::1", 1)
    assert parse(["x.cf", "start"]).http is None
    with pytest.raises(UsageError, match="--http goes with start"):
        parse(["--http", "127.0.0.1:9180", "status"])
    with pytest.raises(UsageError, match="not an IP address"):
        parse(["--http", "web:9180", "start"])


def test_notifycommand_is_global_overridable_and_off_by_default() -> None:
    text = ('notifycommand="/bin/echo global"\n'
            "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 masq\n\tnotifycommand=/bin/true\n"
            "virtual=10.0.0.1:81\n\treal=10.0.0.2:81 masq\n")
    config = parse_text(text, "n.cf")
    assert [v.notifycommand for v in config.virtuals] == ["/bin/true", "/bin/echo global"]
    plain = parse_text("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 masq\n", "p.cf")
    assert plain.settings.notifycommand is None and plain.virtuals[0].notifycommand is None
    with pytest.raises(ConfigError, match=r"b\.cf:1: invalid notifycommand .*No closing quotation"):
        parse_text("notifycommand=\"/bin/echo 'x\"\n", "b.cf")


def document(n: int) -> dict:
    reals = [{"real": f"10.0.{i // 250}.{i % 250 + 1}:80", "dest": f"10.0.{i // 250}.{i % 250 + 1}:80",
              "state": "up" if i % 3 else "down", "weight": None if i % 3 == 0 else 2, "last_at": 1000.0 + i}
             for i in range(n)]
    return {"config": "x.cf", "reloads": {"ok": 2, "failed": 1}, "config_mtime": 123.0,
            "scheduler": {"lateness_histogram": [[0.001, 5], [0.1, 9]], "lateness_count": 10,
                          "lateness_sum": 0.5, "ticks_shed": 3},
            "virtuals": [{"service": "TCP 10.0.0.1:80", "fallback_active": False, "reals": reals[: n // 2]},
                         {"service": "FWM 7", "fallback_active": True, "reals": reals[n // 2:]}]}


def test_a_sliced_exposition_is_one_family_per_metric_and_parses() -> None:
    doc = document(3 * metrics.SLICE + 7)
    telemetry = Telemetry()
    telemetry.real_changed("FWM 7", doc["virtuals"][1]["reals"][0]["dest"])
    text = asyncio.run(metrics.exposition(doc, telemetry)).decode()
    assert text.count("# TYPE healthd_real_up gauge") == 1  # slices share one header
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = families["healthd_real_up"].samples
    assert len(up) == 3 * metrics.SLICE + 7
    reals = [r for v in doc["virtuals"] for r in v["reals"]]
    assert sum(s.value for s in up) == sum(1 for r in reals if r["state"] == "up")
    weights = families["healthd_real_weight"].samples
    assert len(weights) == sum(1 for r in reals if r["weight"] is not None)
    transitions = {(s.labels["virtual"], s.labels["real"]): s.value
                   for s in families["healthd_real_transitions"].samples}
    first_fwm = doc["virtuals"][1]["reals"][0]["dest"]
    assert sum(transitions.values()) == 1 and transitions["FWM 7", first_fwm] == 1
    lateness = {s.labels.get("le"): s.value for s in families["healthd_scheduler_lateness_seconds"].samples
                if s.name.endswith("_bucket")}
    assert lateness == {"0.001": 5, "0.1": 9, "+Inf": 10}
    assert families["healthd_checks_shed"].samples[0].value == 3
    reloads = {s.labels["result"]: s.value for s in families["healthd_config_reloads"].samples}
    assert reloads == {"ok": 2, "failed": 1}
    fallback = {s.labels["virtual"]: s.value for s in families["healthd_virtual_fallback_active"].samples}
    assert fallback == {"TCP 10.0.0.1:80": 0, "FWM 7": 1}


def test_the_sliced_json_is_json_dumps() -> None:
    for doc in (document(0), document(1), document(1001), {"error": "x"}, {"virtuals": []}):
        assert json.loads(asyncio.run(encode(doc))) == json.loads(json.dumps(doc))


def test_lateness_histogram_counts_every_sample_and_has_no_infinity() -> None:
    log = LatenessLog(size=4)
    for value in (0.0005, 0.001, 0.3, 99.0, 0.02):
        log.add(value)
    buckets, count = log.histogram()
    assert count == 5 and len(buckets) == len(LATENESS_BOUNDS)
    assert dict(buckets)[0.001] == 2 and dict(buckets)[0.25] == 3 and dict(buckets)[5.0] == 4
    assert all(math.isfinite(bound) for bound, _ in buckets)
    assert log.percentiles((0.5,), limit=2)[0] in (0.001, 0.3, 99.0, 0.02)


async def test_one_build_serves_everyone_who_asks_at_once() -> None:
    builds = 0

    async def build() -> bytes:
        nonlocal builds
        builds += 1
        await asyncio.sleep(0.05)
        return b"doc %d" % builds

    cached = _Cached(build, max_age=10.0)
    answers = await asyncio.gather(*(cached.get() for _ in range(50)))
    assert set(answers) == {b"doc 1"} and builds == 1
    assert await cached.get() == b"doc 1" and builds == 1  # still fresh
    fresh = _Cached(build, max_age=0.0)
    await fresh.get()
    await fresh.get()
    assert builds == 3  # max_age 0: every request builds
