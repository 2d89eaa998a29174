"""The shared seed configs, and every commented-out sample of ldirectord's own example file."""

from __future__ import annotations

import json
import re

import pytest

from healthd.checks import services
from healthd.checks.spec import KNOWN_SERVICES
from healthd.config import ConfigError, load, parse_text
from healthd.config.cli import main

from .conftest import ROOT, fake_resolver, shared_dir

CONFIGS = sorted((shared_dir() / "data" / "configs").glob("*.cf"))


def test_the_shared_configs_are_there() -> None:
    assert {p.name for p in CONFIGS} >= {"seed-dr.cf", "seed-healthcheck.cf", "seed-nat.cf",
                                          "seed-fwmark-persistent.cf", "upstream-sample.cf"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shared_config_parses(path: object) -> None:
    config = load(str(path), resolver=fake_resolver)
    assert config.virtuals and all(v.reals for v in config.virtuals)


def test_the_example_config_parses() -> None:
    config = load(str(ROOT / "etc" / "ha.d" / "ldirectord.cf"), resolver=fake_resolver)
    assert [v.label for v in config.virtuals] == ["172.17.111.111:80"]


def test_seed_healthcheck_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", str(shared_dir() / "data" / "configs" / "seed-healthcheck.cf")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["global"]["checkinterval"] == 1 and doc["global"]["autoreload"] is True
    [v] = doc["virtuals"]
    assert (v["address"], v["port"], v["fwmark"], v["family"], v["protocol"], v["scheduler"],
            v["persistent"], v["netmask"], v["fallback"], v["quiescent"]) == (
        "172.17.111.111", 80, None, 4, "tcp", "wrr", None, None, None, False)
    assert [(r["address"], r["port"], r["forward"], r["weight"]) for r in v["reals"]] == [
        ("172.17.111.234", 80, "gate", 2), ("172.17.111.222", 80, "gate", 2)]
    for r in v["reals"]:
        c = r["check"]
        assert (c["type"], c["service"], c["checkport"], c["request"], c["receive"], c["checkinterval"],
                c["failurecount"], c["virtualhost"], c["httpmethod"]) == (
            "negotiate", "http", 80, "/ok.html", "ok", 1, 1, None, "GET")
        # The file sets checktimeout=3 globally. In ldirectord's resolution order that value is the
        # check timeout and, with no negotiatetimeout anywhere, the negotiate timeout too.
        assert (c["checktimeout"], c["negotiatetimeout"]) == (3, 3)


def test_seed_healthcheck_without_global_timeouts_gets_ldirectords_defaults() -> None:
    text = (shared_dir() / "data" / "configs" / "seed-healthcheck.cf").read_text()
    text = text.replace("checktimeout=3\n", "")
    check = parse_text(text, "seed.cf", resolver=fake_resolver).virtuals[0].reals[0].check
    assert (check.checktimeout, check.negotiatetimeout) == (5.0, 30.0)


def test_seed_fwmark_persistent() -> None:
    path = shared_dir() / "data" / "configs" / "seed-fwmark-persistent.cf"
    config = load(str(path), resolver=fake_resolver)
    [v] = config.virtuals
    assert (v.fwmark, v.protocol, v.scheduler, v.persistent) == (99, "fwm", "rr", 360)
    assert [(r.port, r.check.port, r.check.request) for r in v.reals] == [(0, 80, "/index.html")] * 2


def commented_samples() -> list[tuple[str, str]]:
    """(name, config) per commented-out virtual section: the file's globals (uncommented)
    followed by that section."""
    lines = (shared_dir() / "data" / "configs" / "upstream-sample.cf").read_text().splitlines()
    head = lines[: next(i for i, line in enumerate(lines) if line.startswith("virtual"))]
    globals_ = [line[1:] if re.match(r"#[a-z0-9]+\s*=", line) else line for line in head]
    samples = []
    i = 0
    while i < len(lines):
        if re.match(r"#virtual6?\s*=", lines[i]):
            block = [lines[i][1:]]
            i += 1
            while i < len(lines) and lines[i].startswith("#\t"):
                block.append(lines[i][1:])
                i += 1
            samples.append((block[0], "\n".join(globals_ + block) + "\n"))
        else:
            i += 1
    return samples


SAMPLES = commented_samples()


def test_the_upstream_sample_has_its_commented_sections() -> None:
    assert len(SAMPLES) >= 15


@pytest.mark.parametrize(("name", "text"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_commented_samples_parse_when_uncommented(name: str, text: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "SUPPORTED_SERVICES", KNOWN_SERVICES)
    config = parse_text(text, "upstream-sample.cf", resolver=fake_resolver)
    assert config.settings.fallback is not None  # the uncommented global fallback=127.0.0.1:80
    [v] = config.virtuals
    assert v.reals and all(r.check.type for r in v.reals)


@pytest.mark.parametrize(("name", "text"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_commented_samples_with_todays_checks(name: str, text: str) -> None:
    """With the services healthd runs today, a sample is valid or refused only as "not supported yet"."""
    try:
        parse_text(text, "upstream-sample.cf", resolver=fake_resolver)
    except ConfigError as exc:
        assert all("is not supported yet" in issue.message for issue in exc.issues), exc


def test_upstream_range_and_mysql_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "SUPPORTED_SERVICES", KNOWN_SERVICES)
    by_name = dict(SAMPLES)
    ranged = parse_text(by_name["virtual=192.168.6.240:80"], "s.cf", resolver=fake_resolver).virtuals[0]
    assert [r.address for r in ranged.reals] == [f"192.168.6.{i}" for i in range(2, 8)] + ["192.168.6.32"]
    mysql = parse_text(by_name["virtual = 192.168.10.74:3306"], "s.cf", resolver=fake_resolver).virtuals[0]
    assert [r.address for r in mysql.reals] == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    c = mysql.reals[0].check
    assert (c.service, c.port, c.login, c.passwd, c.database, c.request) == (
        "mysql", 3306, "readuser", "genericpassword", "portal", "SELECT * FROM link")
