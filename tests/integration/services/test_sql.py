"""pgsql and mysql checks against PostgreSQL and MariaDB started on loopback; oracle's failure paths."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from healthd.checks import sql
from healthd.checks.context import CheckContext
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for
from tests.integration.services.hanging import assert_hang_bounded

pytestmark = pytest.mark.root  # the databases run as their own system users


@pytest.fixture(scope="module")
def postgres() -> Iterator[servers.Daemon]:
    with servers.workdir("postgres") as wd:
        daemon = servers.start_postgres(wd)
        yield daemon
        daemon.stop()


@pytest.fixture(scope="module")
def mariadb() -> Iterator[servers.Daemon]:
    with servers.workdir("mariadb") as wd:
        daemon = servers.start_mariadb(wd)
        yield daemon
        daemon.stop()


@pytest.fixture(scope="module")
def databases(postgres: servers.Daemon, mariadb: servers.Daemon) -> dict[str, servers.Daemon]:
    return {"pgsql": postgres, "mysql": mariadb}


GOOD = {"login": servers.SQL_USER, "passwd": servers.SQL_PASSWORD, "database": servers.SQL_DATABASE}
ENABLED = "/SELECT host FROM pool WHERE enabled"


def sql_spec(service: str, port: int, request: str = ENABLED, **kw: object):
    fields = {**GOOD, **kw}
    return spec_for(service, port, request=request, **fields)


@pytest.mark.parametrize("service", ["pgsql", "mysql"])
@pytest.mark.parametrize("request_", [ENABLED, "SELECT 1", "/select host from pool"])
async def test_query_with_rows_up(databases: dict[str, servers.Daemon], ctx: CheckContext,
                                  service: str, request_: str) -> None:
    out = await sql.check(sql_spec(service, databases[service].ports[service], request_), ctx)
    assert out.ok, out
    assert out.detail.endswith("request returned a row")


@pytest.mark.parametrize("service", ["pgsql", "mysql"])
async def test_query_without_rows_down(databases: dict[str, servers.Daemon], ctx: CheckContext,
                                       service: str) -> None:
    spec = sql_spec(service, databases[service].ports[service], "SELECT host FROM pool WHERE host = 'z'")
    out = await sql.check(spec, ctx)
    assert not out.ok, out
    assert out.detail.endswith("no row")


@pytest.mark.parametrize("service", ["pgsql", "mysql"])
async def test_wrong_password_down(databases: dict[str, servers.Daemon], ctx: CheckContext,
                                   service: str) -> None:
    out = await sql.check(sql_spec(service, databases[service].ports[service], passwd="nope-nope"), ctx)
    assert not out.ok, out
    assert "nope-nope" not in out.detail
    assert "password" in out.detail.lower() or "denied" in out.detail.lower(), out.detail


@pytest.mark.parametrize("service", ["pgsql", "mysql"])
async def test_unknown_database_down(databases: dict[str, servers.Daemon], ctx: CheckContext,
                                     service: str) -> None:
    out = await sql.check(sql_spec(service, databases[service].ports[service], database="nothere"), ctx)
    assert not out.ok, out
    assert "nothere" in out.detail


@pytest.mark.parametrize("service", ["pgsql", "mysql"])
async def test_bad_sql_down(databases: dict[str, servers.Daemon], ctx: CheckContext, service: str) -> None:
    out = await sql.check(sql_spec(service, databases[service].ports[service], "SELEKT 1"), ctx)
    assert not out.ok, out


@pytest.mark.parametrize("service", ["pgsql", "mysql", "oracle"])
@pytest.mark.parametrize("missing", ["login", "request"])
async def test_login_and_request_required(ctx: CheckContext, service: str, missing: str) -> None:
    spec = sql_spec(service, 1, **{missing: "/" if missing == "request" else ""})
    out = await sql.check(spec, ctx)
    assert not out.ok
    assert "need login and request" in out.detail


@pytest.mark.parametrize("service", ["pgsql", "mysql", "oracle"])
async def test_hanging_server_fails_at_deadline(databases: dict[str, servers.Daemon], silent_tcp_port: int,
                                                ctx: CheckContext, service: str) -> None:
    silent = sql_spec(service, silent_tcp_port, negotiatetimeout=1.5)
    healthy = sql_spec("pgsql", databases["pgsql"].ports["pgsql"])
    await assert_hang_bounded(sql.check, silent, healthy, ctx)


async def test_oracle_refused_down(ctx: CheckContext) -> None:
    out = await sql.check(sql_spec("oracle", servers.free_port()), ctx)
    assert not out.ok, out
    assert out.detail == "connection refused", out.detail


@pytest.mark.parametrize("service", ["pgsql", "mysql"])
async def test_stopped_server_down(databases: dict[str, servers.Daemon], ctx: CheckContext,
                                   service: str) -> None:
    databases[service].stop()
    out = await sql.check(sql_spec(service, databases[service].ports[service]), ctx)
    assert not out.ok, out
    assert out.detail == "connection refused", out.detail
