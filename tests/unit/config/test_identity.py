"""Check identities from the config: a real listed in several virtuals is one check when ldirectord's
check would be the same, and stays several when the check depends on the virtual."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import pickle

import pytest

from healthd.checks.spec import CheckSpec, Outcome
from healthd.config import Config, parse_text
from healthd.config.build import build
from healthd.config.parser import parse
from healthd.engine.engine import Engine
from healthd.vocab import CheckType, ServiceProtocol
from tests.unit.engine.fakes import RecordingReconciler

from .conftest import cfg, fake_resolver

REALS = ("10.0.0.2", "10.0.0.3", "10.0.0.4")


def virtuals(heads: list[str], real: str, body: str = "") -> str:
    """One section per head, each listing REALS with `real` (a format with {a}) and `body`."""
    out = []
    for head in heads:
        out.append(head)
        out += [f"\treal={real.format(a=a)}" for a in REALS]
        out += [f"\t{line}" for line in body.strip().splitlines()]
    return "\n".join(out) + "\n"


def identities(c: Config) -> set[CheckSpec]:
    return {r.check for v in c.virtuals for r in v.reals}


FIVE = [f"virtual=10.9.0.{i}:80" for i in range(1, 6)]


def test_five_virtuals_over_the_same_reals_are_one_check_per_real() -> None:
    c = cfg(virtuals(FIVE, "{a}:8080 masq", 'service=http\nrequest="/ok.html"\nreceive="ok"'))
    assert sum(len(v.reals) for v in c.virtuals) == 15
    assert len(identities(c)) == 3


def test_what_the_check_does_not_use_does_not_split_it() -> None:
    # weight, forwarding method, scheduler and persistence differ; ldirectord's own identity
    # string even includes weight and forward, but its check is the same
    text = ("virtual=10.9.0.1:80\n\treal=10.0.0.2:8080 masq 5\n\tscheduler=rr\n\tservice=http\n"
            "virtual=10.9.0.2:80\n\treal=10.0.0.2:8080 masq 1\n\tscheduler=wlc\n\tpersistent=300\n"
            "\tservice=http\n"
            "virtual=10.9.0.3:http\n\treal=10.0.0.2:8080 masq 9 u:100\n")  # service by port: http
    assert len(identities(cfg(text))) == 1


@pytest.mark.parametrize("heads, real, body, why", [
    # a real without a port is checked on its virtual's port (ldirectord's checkport default)
    ([f"virtual=10.9.0.1:{p}" for p in (8001, 8002, 8003)], "{a} gate", "checktype=connect",
     "each virtual's port"),
    (FIVE[:2], "{a}:8080 masq", "checktype=external\ncheckcommand=/bin/true",
     "external: VIP in the arguments"),
])
def test_a_check_that_depends_on_the_virtual_stays_one_per_virtual(heads: list[str], real: str, body: str,
                                                                   why: str) -> None:
    c = cfg(virtuals(heads, real, body))
    assert len(identities(c)) == len(REALS) * len(heads), why


@pytest.mark.parametrize("second", [
    'request="/other.html"', 'receive="other"', "virtualhost=www.example.com", "checkport=9000",
    "checktimeout=7", "httpmethod=HEAD", "failurecount=3",
])
def test_per_virtual_check_settings_keep_identities_apart(second: str) -> None:
    text = (virtuals(FIVE[:1], "{a}:8080 masq", "service=http")
            + virtuals(FIVE[1:2], "{a}:8080 masq", f"service=http\n{second}"))
    assert len(identities(cfg(text))) == 2 * len(REALS)


def test_a_firewall_mark_virtual_shares_its_tcp_checks() -> None:
    text = (virtuals(["virtual=10.9.0.1:80"], "{a}:80 gate", "service=http")
            + virtuals(["virtual=7"], "{a}:80 gate", "service=http")
            + virtuals(["virtual=10.9.0.2:80"], "{a}:80 gate", "checktype=connect")
            + virtuals(["virtual=8"], "{a}:80 gate", "checktype=connect"))
    c = cfg(text)
    assert len(identities(c)) == 2 * len(REALS)  # http and connect, not four kinds
    assert {r.check.protocol for v in c.virtuals for r in v.reals} == {ServiceProtocol.TCP}


@pytest.mark.parametrize("service", ["dns", "sip"])
def test_dns_and_sip_on_a_firewall_mark_go_over_udp_as_before(service: str) -> None:
    text = (virtuals(["virtual=10.9.0.1:53\n\tprotocol=udp"], "{a}:53 gate", f"service={service}")
            + virtuals(["virtual=7"], "{a}:53 gate", f"service={service}")
            + virtuals(["virtual=10.9.0.2:53\n\tprotocol=tcp"], "{a}:53 gate", f"service={service}"))
    c = cfg(text)
    udp, mark, tcp = (v.reals[0].check for v in c.virtuals)
    assert mark == udp and mark.protocol is ServiceProtocol.UDP  # the checks read anything but tcp as udp
    assert tcp != udp and tcp.protocol is ServiceProtocol.TCP
    assert c.virtuals[1].protocol is ServiceProtocol.FWM  # the virtual itself is still a mark


def test_ping_on_udp_and_connect_on_a_mark_keep_their_types() -> None:
    c = cfg(virtuals(["virtual=10.9.0.1:53\n\tprotocol=udp"], "{a}:53 gate", "checktype=connect")
            + virtuals(["virtual=7"], "{a}:53 gate", "checktype=connect"))
    assert [v.reals[0].check.type for v in c.virtuals] == [CheckType.PING, CheckType.CONNECT]


def test_a_host_name_is_resolved_once_per_load() -> None:
    asked: list[tuple[str, int]] = []

    def counting(host: str, family: int) -> str | None:
        asked.append((host, family))
        return fake_resolver(host, family)

    text = virtuals(FIVE, "web1.test:8080 masq", "service=http") + "\tfallback=www.test:80\n"
    config, errors, _ = build(parse(text, "t.cf"), counting)
    assert not errors
    assert sorted(asked) == [("web1.test", 4), ("www.test", 4)]
    assert {r.address for v in config.virtuals for r in v.reals} == {"10.0.0.21"}


def test_an_unresolvable_name_is_an_error_on_every_line_that_uses_it() -> None:
    text = virtuals(FIVE[:2], "nowhere.test:8080 masq", "service=http")
    _, errors, _ = build(parse(text, "t.cf"), fake_resolver)
    lines = sorted({e.line for e in errors if "cannot resolve 'nowhere.test'" in e.message})
    assert lines == [2, 3, 4, 7, 8, 9]


class CountingRunner:
    def __init__(self) -> None:
        self.runs: list[CheckSpec] = []

    async def start(self, services: object = None) -> None:
        pass

    async def run(self, spec: CheckSpec) -> Outcome:
        self.runs.append(spec)
        return Outcome(True, "ok", 0.0)

    async def close(self) -> None:
        pass


async def test_the_engine_runs_each_shared_check_once_per_interval() -> None:
    text = "checkinterval=0.2\n" + virtuals(FIVE, "{a}:8080 masq", 'service=http\nreceive="ok"')
    config = parse_text(text, "t.cf", resolver=fake_resolver)
    runner = CountingRunner()
    engine = Engine(config, runner, RecordingReconciler())
    await engine.start()
    try:
        await asyncio.wait_for(engine.first_round.wait(), 10)
        runner.runs.clear()
        await asyncio.sleep(1.0)
    finally:
        await engine.stop(cleanstop=False)
    assert {s.address for s in runner.runs} == set(REALS)
    # ~5 runs of each real's one check in 1 s at interval 0.2; five virtuals' own checks would be ~25
    per_real = [sum(1 for s in runner.runs if s.address == a) for a in REALS]
    assert all(3 <= n <= 7 for n in per_real), per_real


def test_the_remembered_hash_follows_equality() -> None:
    c = cfg(virtuals(FIVE[:2], "{a}:8080 masq", "service=http\nlogin=x\npasswd=secret"))
    a, b = c.virtuals[0].reals[0].check, c.virtuals[1].reals[0].check
    assert a == b and a is not b and hash(a) == hash(b)
    moved = dataclasses.replace(a, port=8081)
    assert moved != a and hash(moved) == hash(dataclasses.replace(a, port=8081))
    assert hash(dataclasses.replace(moved, port=8080)) == hash(a)
    other = dataclasses.replace(a, passwd="other")  # secrets are part of the identity, not of repr
    assert other != a and {a: 1}.get(other) is None and "secret" not in repr(a)
    for twin in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert twin == a and hash(twin) == hash(a) and twin.passwd == "secret"
