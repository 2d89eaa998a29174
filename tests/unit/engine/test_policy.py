"""The pure policy: config + health + maintenance + adopted kernel table -> desired IPVS table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from healthd.checks.spec import CheckType
from healthd.config.model import Fallback
from healthd.engine.health import State
from healthd.engine.policy import desired_table, health_from, prefix_length, service_key, service_of
from healthd.ipvs.model import Dest, DestKey, Entry, Family, Forward, Service, ServiceKey, ServiceProtocol

from .fakes import FALLBACK, config, fwm_virtual, real, spec, virtual

R1, R2 = real("10.0.0.2", weight=5), real("10.0.0.3", weight=3)
KEY = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.1", 80)
U, D, N = State.UP, State.DOWN, State.UNKNOWN


def weights(table, key=KEY) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {f"{k.address}:{k.port}": d.weight for k, d in table[key].dests.items()}


def adopted(*dests: tuple[str, int, int]) -> dict[ServiceKey, Entry]:
    return {KEY: Entry(Service(KEY), {DestKey(a, p): Dest(a, p, Forward.MASQ, w) for a, p, w in dests})}


# name, virtual options, global options, states of R1/R2, maintenance, adopted dests, fallback before,
# expected weights, expected fallback active
CASES = [
    ("both up", {}, {}, (U, U), (), (), False, {"10.0.0.2:80": 5, "10.0.0.3:80": 3}, False),
    ("down removed", {}, {}, (U, D), (), (), False, {"10.0.0.2:80": 5}, False),
    ("down quiesced", {"quiescent": True}, {}, (U, D), (), (), False,
     {"10.0.0.2:80": 5, "10.0.0.3:80": 0}, False),
    ("unknown absent", {}, {}, (U, N), (), (), False, {"10.0.0.2:80": 5}, False),
    ("unknown keeps kernel weight", {}, {}, (N, N), (), (("10.0.0.2", 80, 7),), False,
     {"10.0.0.2:80": 7}, False),
    ("known state beats kernel weight", {}, {}, (U, D), (), (("10.0.0.3", 80, 7),), False,
     {"10.0.0.2:80": 5}, False),
    ("maintenance forces down", {}, {}, (U, U), (("10.0.0.3", 80),), (), False, {"10.0.0.2:80": 5}, False),
    ("maintenance quiesces", {"quiescent": True}, {}, (U, U), (("10.0.0.2", 80),), (), False,
     {"10.0.0.2:80": 0, "10.0.0.3:80": 3}, False),
    ("all down: fallback", {"fallback": FALLBACK}, {}, (D, D), (), (), False, {"127.0.0.1:80": 1}, True),
    ("global fallback", {}, {"fallback": FALLBACK}, (D, D), (), (), False, {"127.0.0.1:80": 1}, True),
    ("fallback6 not for v4", {}, {"fallback6": Fallback("::1", 80)}, (D, D), (), (), False, {}, True),
    ("one up: no fallback", {"fallback": FALLBACK}, {}, (D, U), (), (), False, {"10.0.0.3:80": 3}, False),
    ("quiesced + fallback", {"fallback": FALLBACK, "quiescent": True}, {}, (D, D), (), (), False,
     {"10.0.0.2:80": 0, "10.0.0.3:80": 0, "127.0.0.1:80": 1}, True),
    ("all unknown: fallback waits", {"fallback": FALLBACK}, {}, (N, N), (), (), False, {}, False),
    ("one down, one unknown: still waits", {"fallback": FALLBACK}, {}, (D, N), (), (), False, {}, False),
    ("was active, new real unknown: stays", {"fallback": FALLBACK}, {}, (D, N), (), (), True,
     {"127.0.0.1:80": 1}, True),
    ("was active, real up: off", {"fallback": FALLBACK}, {}, (D, U), (), (), True, {"10.0.0.3:80": 3}, False),
    ("adopted alive: no fallback", {"fallback": FALLBACK}, {}, (N, N), (), (("10.0.0.2", 80, 2),), False,
     {"10.0.0.2:80": 2}, False),
    ("adopted weight 0 is not alive", {"fallback": FALLBACK}, {}, (D, N), (), (("10.0.0.3", 80, 0),), False,
     {"10.0.0.3:80": 0, "127.0.0.1:80": 1}, True),
    ("fallback port defaults", {"fallback": Fallback("127.0.0.1", 0)}, {}, (D, D), (), (), False,
     {"127.0.0.1:80": 1}, True),
]


@pytest.mark.parametrize(
    ("name", "vopts", "gopts", "states", "maint", "kernel", "was", "expected", "active"),
    CASES, ids=[c[0] for c in CASES],
)
def test_policy_table(name, vopts, gopts, states, maint, kernel, was, expected, active):  # type: ignore[no-untyped-def]
    cfg = config(virtual(reals=(R1, R2), **vopts), **gopts)
    lookup = health_from({R1.check: states[0], R2.check: states[1]})
    out = desired_table(cfg, lookup, frozenset(maint), adopted(*kernel), [KEY] if was else [])
    assert weights(out.table) == expected
    assert (KEY in out.fallback_active) is active
    assert out.managed == {KEY}


def test_down_quiesced_real_readd_follows_readdquiescent() -> None:
    for readd in (False, True):
        cfg = config(virtual(reals=(R1,), quiescent=True), readdquiescent=readd)
        out = desired_table(cfg, health_from({R1.check: D}))
        dest = out.table[KEY].dests[DestKey("10.0.0.2", 80)]
        assert dest.weight == 0 and dest.readd is readd
    up = desired_table(config(virtual(reals=(R1,)), readdquiescent=False), health_from({R1.check: U}))
    assert up.table[KEY].dests[DestKey("10.0.0.2", 80)].readd is True


def test_checktype_on_is_up_and_off_is_down_unless_the_kernel_has_it() -> None:
    on = real("10.0.0.2", check=spec("10.0.0.2", type=CheckType.ON))
    off = real("10.0.0.3", check=spec("10.0.0.3", type=CheckType.OFF))
    out = desired_table(config(virtual(reals=(on, off))), health_from({}))
    assert weights(out.table) == {"10.0.0.2:80": 1}
    # off keeps what the kernel has, and is never "pending": the fallback may come on.
    only_off = config(virtual(reals=(off,), fallback=FALLBACK))
    out = desired_table(only_off, health_from({}), adopted=adopted(("10.0.0.3", 80, 4)))
    assert weights(out.table) == {"10.0.0.3:80": 4} and not out.fallback_active
    out = desired_table(only_off, health_from({}))
    assert weights(out.table) == {"127.0.0.1:80": 1} and out.fallback_active


def test_checktype_off_with_quiescent_stays_at_weight_0_beside_the_fallback() -> None:
    """ldirectord's table: at start it sets every real it finds missing down, which quiesces it."""
    off = real("10.0.0.3", check=spec("10.0.0.3", type=CheckType.OFF))
    for readd in (False, True):
        cfg = config(virtual(reals=(off,), fallback=FALLBACK, quiescent=True), readdquiescent=readd)
        out = desired_table(cfg, health_from({}))
        assert weights(out.table) == {"10.0.0.3:80": 0, "127.0.0.1:80": 1} and out.fallback_active
        assert out.table[KEY].dests[DestKey("10.0.0.3", 80)].readd is readd
    # an entry the kernel already had keeps its weight, as in ldirectord (it re-adds nothing)
    cfg = config(virtual(reals=(off,), fallback=FALLBACK, quiescent=True))
    out = desired_table(cfg, health_from({}), adopted=adopted(("10.0.0.3", 80, 4)))
    assert weights(out.table) == {"10.0.0.3:80": 4} and not out.fallback_active


def test_service_settings_mapped() -> None:
    v = virtual(scheduler="sh", persistent=300, netmask="255.255.255.0", schedflags=("sh-port", "flag-3"),
                protocol=ServiceProtocol.UDP, port=53, ops=True)
    svc = service_of(v)
    assert svc == Service(ServiceKey(Family.INET, ServiceProtocol.UDP, "10.0.0.1", 53), "sh", 300, 24, True,
                          frozenset({2, 3}))
    assert service_of(virtual(netmask="255.255.255.0")).netmask is None  # only with persistence
    v6 = virtual("2001:db8::1", persistent=60, netmask="64")
    assert service_of(v6).key.family is Family.INET6 and service_of(v6).netmask == 64


def test_a_masq_real_without_a_port_is_port_0_in_the_table_and_checked_on_the_virtuals_port() -> None:
    from healthd.config import parse_text

    cfg = parse_text("virtual=10.0.0.1:8080\n\treal=10.0.0.2 masq 2\n\treal=10.0.0.3 gate\n"
                     "\tservice=http\n", "t.cf")
    masq, gate = cfg.virtuals[0].reals
    assert (masq.port, masq.check.port, gate.port, gate.check.port) == (0, 8080, 8080, 8080)
    out = desired_table(cfg, health_from({masq.check: U, gate.check: U}))
    key = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.1", 8080)
    assert weights(out.table, key) == {"10.0.0.2:0": 2, "10.0.0.3:8080": 1}


def test_fwmark_virtual_key_and_ports() -> None:
    r = real("10.0.0.2", 0, forward=Forward.GATE, check=spec("10.0.0.2", 80))
    v = fwm_virtual(7, reals=(r,))
    key = service_key(v)
    assert key == ServiceKey(Family.INET, ServiceProtocol.FWM, fwmark=7)
    out = desired_table(config(v), health_from({r.check: U}))
    assert list(out.table[key].dests) == [DestKey("10.0.0.2", 0)]


def test_gate_and_ipip_reals_take_the_virtual_port_like_ipvsadm() -> None:
    g = real("10.0.0.2", 8080, forward=Forward.GATE)
    m = real("10.0.0.3", 8080, forward=Forward.MASQ)
    t = real("10.0.0.4", 8080, forward=Forward.IPIP, weight=2, upper=100, lower=10)
    out = desired_table(config(virtual(reals=(g, m, t))), health_from({g.check: U, m.check: U, t.check: U}))
    dests = out.table[KEY].dests
    assert set(dests) == {DestKey("10.0.0.2", 80), DestKey("10.0.0.3", 8080), DestKey("10.0.0.4", 80)}
    assert dests[DestKey("10.0.0.4", 80)] == Dest("10.0.0.4", 80, Forward.IPIP, 2, 100, 10)


def test_shared_check_feeds_every_virtual() -> None:
    shared = spec("10.0.0.2", 80)
    v1 = virtual("10.0.0.1", reals=(real("10.0.0.2", check=shared),))
    v2 = virtual("10.0.0.9", reals=(real("10.0.0.2", check=shared, weight=4),))
    out = desired_table(config(v1, v2), health_from({shared: U}))
    key2 = replace(KEY, address="10.0.0.9")
    assert weights(out.table) == {"10.0.0.2:80": 1}
    assert weights(out.table, key2) == {"10.0.0.2:80": 4}


def test_policy_is_deterministic() -> None:
    cfg = config(virtual(reals=(R1, R2), quiescent=True, fallback=FALLBACK))
    lookup = health_from({R1.check: D, R2.check: U})
    assert desired_table(cfg, lookup) == desired_table(cfg, lookup)


@pytest.mark.parametrize(("mask", "family", "want"), [
    ("255.255.255.255", 4, 32), ("255.255.0.0", 4, 16), ("24", 4, 24), ("128", 6, 128), ("/48", 6, 48),
    (None, 4, None),
])
def test_prefix_length(mask: str | None, family: int, want: int | None) -> None:
    assert prefix_length(mask, family) == want


def test_a_previous_plan_gives_the_same_plan_with_its_own_unchanged_objects() -> None:
    from healthd.config.model import GlobalSettings
    from healthd.engine.policy import plan_virtual

    v = virtual(reals=(R1, R2), quiescent=True)
    settings = GlobalSettings()
    states = {R1.check: U, R2.check: U}
    first = plan_virtual(v, settings, health_from(states), frozenset(), None, False)
    states[R2.check] = D  # R2 fails: quiesced at weight 0
    fresh = plan_virtual(v, settings, health_from(states), frozenset(), None, False)
    again = plan_virtual(v, settings, health_from(states), frozenset(), None, False, previous=first.entry)
    assert again == fresh  # the previous plan changes nothing in the result
    r1, r2 = DestKey("10.0.0.2", 80), DestKey("10.0.0.3", 80)
    assert again.entry.dests[r1] is first.entry.dests[r1]  # unchanged: the same object
    assert again.entry.dests[r2] is not first.entry.dests[r2] and again.entry.dests[r2].weight == 0
