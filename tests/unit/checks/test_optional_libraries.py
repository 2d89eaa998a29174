"""A per-service library that is not installed costs only that service's checks, with a sentence naming it."""

from __future__ import annotations

import importlib
import sys
from dataclasses import replace

import pytest

from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol

LDAP = CheckSpec(type=CheckType.NEGOTIATE, service="ldap", protocol=ServiceProtocol.TCP, family=4,
                 address="127.0.0.1", port=9, negotiatetimeout=0.5, checktimeout=0.5)


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make `import NAME` fail for each module, as on a machine without its package."""
    for name in list(sys.modules):
        if name.split(".")[0] in modules or name in ("healthd.checks.ldap", "healthd.checks.sql"):
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


async def test_missing_ldap3_fails_ldap_checks_with_a_clear_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "ldap3")
    runner = CheckRunner()
    await runner.start()  # every other check still loads: the daemon starts
    assert {"http", "connect"} <= set(runner._fns)
    for service in ("ldap", "ldaps"):
        outcome = await runner.run(replace(LDAP, service=service))
        assert not outcome.ok
        assert outcome.detail.startswith(f"service={service} needs the Python module ldap3")
        assert "apt install python3-ldap3" in outcome.detail
    await runner.close()


async def test_missing_mysql_driver_leaves_pgsql_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "aiomysql")
    sql = importlib.import_module("healthd.checks.sql")
    assert sql.asyncpg is not None and sql.aiomysql is None
    runner = CheckRunner()
    mysql = await runner.run(replace(LDAP, service="mysql", login="u", request="SELECT 1"))
    assert not mysql.ok and "apt install python3-aiomysql" in mysql.detail
    pgsql = await runner.run(replace(LDAP, service="pgsql", login="u", request="SELECT 1"))
    assert not pgsql.ok and "needs the Python module" not in pgsql.detail  # it tried: port 9 refuses
    await runner.close()
