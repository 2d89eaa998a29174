"""The pure diff: minimal, ordered, confined to managed services, edits in place."""

from healthd.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    EditDest,
    EditService,
    Family,
    Forward,
    Service,
    ServiceKey,
    ServiceProtocol,
)
from healthd.ipvs.reconcile import diff
from tests.unit.ipvs.contract import FWM, OTHER, TCP, entry


def test_nothing_to_do_when_equal() -> None:
    table = {TCP: entry(Service(TCP, "wrr"), Dest("10.0.1.1", 80))}
    assert diff(table, table, {TCP}) == []


def test_from_empty_service_before_its_dests() -> None:
    desired = {TCP: entry(Service(TCP, "wrr"), Dest("10.0.1.2", 80), Dest("10.0.1.1", 80))}
    assert diff(desired, {}, {TCP}) == [
        AddService(Service(TCP, "wrr")),
        AddDest(TCP, Dest("10.0.1.1", 80)),
        AddDest(TCP, Dest("10.0.1.2", 80)),
    ]


def test_unmanaged_services_are_never_touched() -> None:
    actual = {OTHER: entry(Service(OTHER, "rr"), Dest("10.9.0.1", 443))}
    desired = {OTHER: entry(Service(OTHER, "wrr"))}
    assert diff(desired, actual, set()) == []
    assert diff({}, actual, {TCP}) == []


def test_settings_change_is_an_edit_never_delete_and_add() -> None:
    dest = Dest("10.0.1.1", 80)
    actual = {TCP: entry(Service(TCP, "wrr"), dest)}
    desired = {TCP: entry(Service(TCP, "sh", persistent=300, netmask=24), dest)}
    assert diff(desired, actual, {TCP}) == [EditService(Service(TCP, "sh", persistent=300, netmask=24))]


def test_full_netmask_equals_none() -> None:
    actual = {TCP: entry(Service(TCP, "rr", persistent=5))}
    desired = {TCP: entry(Service(TCP, "rr", persistent=5, netmask=32))}
    assert diff(desired, actual, {TCP}) == []


def test_adds_before_edits_before_deletes_then_service_deletions() -> None:
    actual = {
        TCP: entry(Service(TCP), Dest("10.0.1.1", 80), Dest("10.0.1.2", 80, weight=3)),
        FWM: entry(Service(FWM, "rr")),
    }
    desired = {TCP: entry(Service(TCP), Dest("10.0.1.2", 80, Forward.MASQ, 3), Dest("10.0.1.3", 80))}
    assert diff(desired, actual, {TCP, FWM}) == [
        AddDest(TCP, Dest("10.0.1.3", 80)),
        EditDest(TCP, Dest("10.0.1.2", 80, Forward.MASQ, 3)),
        DeleteDest(TCP, DestKey("10.0.1.1", 80)),
        DeleteService(FWM),
    ]


def test_readd_flag_is_not_a_difference() -> None:
    actual = {TCP: entry(Service(TCP), Dest("10.0.1.1", 80, weight=0))}
    desired = {TCP: entry(Service(TCP), Dest("10.0.1.1", 80, weight=0, readd=False))}
    assert diff(desired, actual, {TCP}) == []


def test_ipv6_and_fwmark_keys_are_distinct() -> None:
    fwm6 = ServiceKey(Family.INET6, ServiceProtocol.FWM, fwmark=99)
    desired = {fwm6: entry(Service(fwm6, "rr"))}
    actual = {FWM: entry(Service(FWM, "rr"))}
    assert diff(desired, actual, {FWM, fwm6}) == [AddService(Service(fwm6, "rr")), DeleteService(FWM)]
