"""announce= (route health injection): the directive, which addresses can serve, the announcer, the wire."""

from __future__ import annotations

import logging
import socket
import struct
from types import SimpleNamespace

import pytest

from healthd.announce import routes
from healthd.announce.announcer import Announcer
from healthd.announce.feature import AnnounceFeature
from healthd.announce.serving import serving
from healthd.config import ConfigError, parse_text
from healthd.engine import events
from healthd.engine.bus import EventBus
from healthd.engine.policy import service_key
from healthd.ipvs.model import Dest, DestKey, Entry, Service

CONFIG = """\
announce=yes
virtual=10.0.0.1:80
\treal=10.0.0.2:80 gate
\tservice=http
virtual=10.0.0.1:443
\treal=10.0.0.3:443 gate
\tservice=https
virtual=10.0.0.9:80
\treal=10.0.0.2:80 gate
\tservice=http
\tannounce=no
virtual=7
\treal=10.0.0.2 gate
\tchecktype=on
"""


def test_global_announce_applies_to_every_virtual_with_an_address() -> None:
    config = parse_text(CONFIG, "/etc/ha.d/t.cf")
    assert config.settings.announce is True
    assert [(v.label, v.announce) for v in config.virtuals] == [
        ("10.0.0.1:80", True), ("10.0.0.1:443", True), ("10.0.0.9:80", False), ("fwmark 7", False)]


def test_announce_is_off_by_default() -> None:
    config = parse_text("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n", "/t.cf")
    assert not config.settings.announce and not config.virtuals[0].announce


def test_a_firewall_mark_cannot_be_announced() -> None:
    with pytest.raises(ConfigError) as err:
        parse_text("virtual=7\n\treal=10.0.0.2 gate\n\tchecktype=on\n\tannounce=yes\n", "/t.cf")
    assert str(err.value) == ("/t.cf:4: announce=yes needs a virtual service with an address: a firewall "
                              "mark has none to announce: \"announce=yes\"")


class FakeRoutes:
    def __init__(self, log: list[str], fail: set[str] = frozenset()) -> None:
        self.log = log
        self.fail = fail

    def add(self, address: str) -> None:
        if address in self.fail:
            raise routes.RouteError(f"cannot add the route to {address}: no")
        self.log.append(f"+{address}")

    def remove(self, address: str) -> None:
        self.log.append(f"-{address}")

    def close(self) -> None:
        self.log.append("close routes")


class FakeDevice:
    name = "healthd7"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def close(self) -> None:
        self.log.append("close device")


def test_the_announcer_follows_what_can_serve_and_withdraws_all_on_close(caplog) -> None:
    caplog.set_level(logging.INFO, logger="healthd")
    log: list[str] = []
    opened: list[int] = []

    def opener():
        opened.append(1)
        return FakeDevice(log), FakeRoutes(log, {"10.0.0.66"})

    a = Announcer(opener)
    a.update({"10.0.0.1": False})
    assert opened == [] and log == []  # nothing to announce: no device yet
    a.update({"10.0.0.1": True, "10.0.0.2": True, "10.0.0.66": True})
    a.update({"10.0.0.1": True, "10.0.0.2": False})
    a.update({"10.0.0.1": True})
    a.close()
    assert opened == [1]
    assert log == ["+10.0.0.1", "+10.0.0.2", "-10.0.0.2", "close routes", "close device"]
    messages = [r.getMessage() for r in caplog.records]
    assert "announce: 10.0.0.2 withdrawn: it cannot serve" in messages
    assert "announce: cannot add the route to 10.0.0.66: no" in messages
    assert messages[-1] == "announce: 10.0.0.1 withdrawn: healthd is stopping"


def test_a_device_that_cannot_be_made_is_reported_once_and_tried_again(caplog) -> None:
    log: list[str] = []
    attempts: list[int] = []

    def opener():
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("cannot open /dev/net/tun")
        return FakeDevice(log), FakeRoutes(log)

    a = Announcer(opener)
    a.update({"10.0.0.1": True})
    a.update({"10.0.0.1": True})
    a.update({"10.0.0.1": True})
    assert len(attempts) == 3 and log == ["+10.0.0.1"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "announce: cannot open /dev/net/tun; nothing is announced"]


def _applied(config, weights: dict[str, list[int]]) -> events.TableApplied:
    """A TableApplied whose table holds, per virtual label, reals of these weights (absent: not in table)."""
    virtuals = {service_key(v): v for v in config.virtuals}
    table = {}
    for key, virtual in virtuals.items():
        if virtual.label not in weights:
            continue
        dests = {DestKey(f"10.9.9.{i}", 80): Dest(f"10.9.9.{i}", 80, weight=w)
                 for i, w in enumerate(weights[virtual.label])}
        table[key] = Entry(Service(key), dests)
    return events.TableApplied(table, virtuals, (), 0.0)


def test_an_address_is_served_while_one_of_its_announced_services_can_serve() -> None:
    config = parse_text(CONFIG, "/t.cf")
    applied = _applied(config, {"10.0.0.1:80": [], "10.0.0.1:443": [1], "10.0.0.9:80": [1]})
    assert serving(applied) == {"10.0.0.1": True}  # 10.0.0.9 has announce=no
    applied = _applied(config, {"10.0.0.1:80": [0]})
    assert serving(applied) == {"10.0.0.1": False}  # weight 0 (quiescent) serves nothing
    applied = _applied(config, {"10.0.0.1:80": [0, 1]})  # the fallback server, or any real, serves
    assert serving(applied) == {"10.0.0.1": True}


async def test_the_feature_follows_applied_tables_and_withdraws_on_stop() -> None:
    config = parse_text(CONFIG, "/t.cf")
    bus = EventBus()
    log: list[str] = []
    feature = AnnounceFeature(make=lambda: Announcer(lambda: (FakeDevice(log), FakeRoutes(log))))
    await feature.start(SimpleNamespace(events=bus))  # type: ignore[arg-type]
    bus.emit(_applied(config, {"10.0.0.1:80": [1]}))
    bus.emit(_applied(config, {"10.0.0.1:80": [1]}))  # no change: nothing done
    bus.emit(_applied(config, {"10.0.0.1:80": []}))
    await feature.stop()
    bus.emit(_applied(config, {"10.0.0.1:80": [1]}))  # after stop: not subscribed any more
    assert log == ["+10.0.0.1", "-10.0.0.1", "close routes", "close device"]


async def test_without_announce_the_feature_makes_no_device() -> None:
    config = parse_text("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n", "/t.cf")
    bus = EventBus()
    feature = AnnounceFeature(make=lambda: pytest.fail("no announcer wanted"))
    await feature.start(SimpleNamespace(events=bus))  # type: ignore[arg-type]
    bus.emit(_applied(config, {"10.0.0.1:80": [1]}))
    await feature.stop()


def test_route_messages_carry_the_host_prefix_table_protocol_and_device() -> None:
    msg = routes.route_message(routes.RTM_NEWROUTE, 0x405, 9, "192.0.2.7", 42)
    length, kind, flags, seq, _pid = struct.unpack_from("IHHII", msg)
    assert (length, kind, flags, seq) == (len(msg), 24, 0x405, 9)
    family, dst_len, _s, _t, _tb, proto, scope, rtype, _f = struct.unpack_from("BBBBBBBBI", msg, 16)
    assert (family, dst_len, proto, scope, rtype) == (socket.AF_INET, 32, 200, 253, 1)
    attrs, offset = {}, 28
    while offset < len(msg):
        alen, akind = struct.unpack_from("HH", msg, offset)
        attrs[akind] = msg[offset + 4:offset + alen]
        offset += alen + (-alen % 4)
    assert attrs == {1: socket.inet_aton("192.0.2.7"), 4: struct.pack("I", 42), 15: struct.pack("I", 200)}
    v6 = routes.route_message(routes.RTM_DELROUTE, 1, 1, "2001:db8::7", 3)
    assert struct.unpack_from("BB", v6, 16) == (socket.AF_INET6, 128)
