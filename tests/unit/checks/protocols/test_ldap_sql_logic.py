"""Table tests for the ldap and sql checks' pure decisions (no sockets)."""

from __future__ import annotations

import pytest

from healthd.checks import ldap, sql
from healthd.checks.dialog import CheckFailed
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol


def _spec(service: str, **kw: object) -> CheckSpec:
    return CheckSpec(type=CheckType.NEGOTIATE, service=service, protocol=ServiceProtocol.TCP, family=4,
                     address="127.0.0.1", port=1, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "base"),
    [("/", ""), ("/ou=people,dc=x", "ou=people,dc=x"), ("dc=x", "dc=x")],
)
def test_search_base(request_: str, base: str) -> None:
    assert ldap.search_base(_spec("ldap", request=request_)) == base


@pytest.mark.parametrize(
    ("login", "passwd", "simple"),
    [("cn=a", "pw", True), ("cn=a", "", False), ("", "pw", False), ("", "", False)],
)
def test_bind_kind(login: str, passwd: str, simple: bool) -> None:
    assert ldap.uses_simple_bind(_spec("ldap", login=login, passwd=passwd)) is simple


@pytest.mark.parametrize(
    ("dns", "receive_re", "ok"),
    [
        (["ou=people,dc=x"], None, True),
        (["ou=people,dc=x"], "^ou=people", True),
        (["ou=people,dc=x"], "^cn=", False),
        ([], None, False),
        (["a", "b"], None, False),
        (["ou=people,dc=x"], "(", False),
    ],
)
def test_judge_entries(dns: list[str], receive_re: str | None, ok: bool) -> None:
    if ok:
        assert dns[0] in ldap.judge_entries(dns, "base", receive_re)
    else:
        with pytest.raises(CheckFailed):
            ldap.judge_entries(dns, "base", receive_re)


@pytest.mark.parametrize(
    ("request_", "query"),
    [("/SELECT 1", "SELECT 1"), ("SELECT 1", "SELECT 1"), ("/ select x from t ", "select x from t")],
)
def test_query_of(request_: str, query: str) -> None:
    assert sql.query_of(_spec("mysql", request=request_, login="u")) == query


@pytest.mark.parametrize(("request_", "login"), [("/", "u"), ("/SELECT 1", ""), ("", "")])
def test_query_needs_login_and_request(request_: str, login: str) -> None:
    with pytest.raises(CheckFailed, match="need login and request"):
        sql.query_of(_spec("pgsql", request=request_, login=login))


def test_driver_error_is_one_line() -> None:
    failed = sql.driver_error("pgsql", RuntimeError("first line\nsecond line"))
    assert str(failed) == "PostgreSQL: first line"
