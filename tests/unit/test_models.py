"""The shared value types: their spelling in logs and their identity semantics."""

from dataclasses import replace

from healthd.checks.spec import CheckSpec, CheckType
from healthd.ipvs.model import Family, ServiceKey, ServiceProtocol


def spec(**kw: object) -> CheckSpec:
    base = CheckSpec(type=CheckType.NEGOTIATE, service="http", protocol=ServiceProtocol.TCP, family=4,
                     address="10.0.0.2", port=80)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_equal_specs_are_one_identity() -> None:
    assert len({spec(), spec(), spec(port=81)}) == 2


def test_secrets_never_in_repr() -> None:
    text = repr(spec(passwd="hunter2", secret="s3cret"))
    assert "hunter2" not in text and "s3cret" not in text


def test_deadline_follows_check_type() -> None:
    assert spec(negotiatetimeout=30, checktimeout=5).deadline == 30
    assert spec(type=CheckType.CONNECT, negotiatetimeout=30, checktimeout=5).deadline == 5


def test_service_key_spelled_like_ipvsadm() -> None:
    assert str(ServiceKey(Family.INET, ServiceProtocol.TCP, "10.0.0.1", 80)) == "TCP 10.0.0.1:80"
    assert str(ServiceKey(Family.INET6, ServiceProtocol.UDP, "2001:db8::1", 53)) == "UDP [2001:db8::1]:53"
    assert str(ServiceKey(Family.INET, ServiceProtocol.FWM, fwmark=99)) == "FWM 99"
