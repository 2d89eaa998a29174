"""Negotiate checks for service=mysql, pgsql and oracle: log in, run `request`, up when it returns a row.

As in ldirectord, `login`, `passwd` and `database` (Oracle: the SID) are used
to connect and `request` (a SELECT) must return at least one row; a missing
login or request is a failure. Unlike ldirectord, whose SQL checks have no
timeout at all, every step is bounded by the check's deadline: the drivers are
asyncio-native (asyncpg, aiomysql, python-oracledb in thin mode), so cancelling
at the deadline really stops the work.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

from healthd.checks import optional
from healthd.checks.context import CheckContext
from healthd.checks.dialog import CheckFailed, bounded, excerpt, strip_slash
from healthd.checks.spec import CheckSpec, Outcome

PRODUCT = {"mysql": "MySQL", "pgsql": "PostgreSQL", "oracle": "Oracle"}
NEEDS = {"pgsql": ("asyncpg",), "mysql": ("aiomysql", "pymysql"), "oracle": ("oracledb",)}


def _optional_import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if not optional.is_optional(exc.name):
            raise
        return None


# Imported here, not inside a check: a first import takes long enough to eat a short deadline
# and blocks the event loop while it runs. Each driver is optional (healthd.checks.optional):
# without it only its own service's checks fail, with a sentence naming the package.
aiomysql = _optional_import("aiomysql")
asyncpg = _optional_import("asyncpg")
oracledb = _optional_import("oracledb")
pymysql = _optional_import("pymysql")
_LOADED = {"aiomysql": aiomysql, "asyncpg": asyncpg, "oracledb": oracledb, "pymysql": pymysql}

# ---- pure logic ----------------------------------------------------------


def query_of(spec: CheckSpec) -> str:
    """The SQL to run; ldirectord's leading "/" is not part of it."""
    query = strip_slash(spec.request).strip()
    if not spec.login or not query:
        raise CheckFailed(f"{spec.service} checks need login and request (a SELECT) to be set")
    return query


def driver_error(service: str, exc: BaseException) -> CheckFailed:
    """A driver's error as a one-line detail (drivers never put the password in their messages)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CheckFailed(f"{PRODUCT[service]}: {excerpt(message, 120)}")


# ---- drivers -------------------------------------------------------------


async def _pgsql(spec: CheckSpec, query: str) -> Any:
    try:
        conn = await asyncpg.connect(
            host=spec.address, port=spec.port, user=spec.login, password=spec.passwd,
            database=spec.database or None, timeout=spec.deadline,
        )
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise driver_error(spec.service, exc) from exc
    try:
        return await conn.fetchrow(query)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise driver_error(spec.service, exc) from exc
    finally:
        conn.terminate()


async def _mysql(spec: CheckSpec, query: str) -> Any:
    try:
        conn = await aiomysql.connect(
            host=spec.address, port=spec.port, user=spec.login, password=spec.passwd,
            db=spec.database or None, connect_timeout=spec.deadline, autocommit=True,
        )
    except pymysql.err.MySQLError as exc:
        raise _mysql_error(spec, exc) from exc
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(query)
            return await cursor.fetchone()
    except pymysql.err.MySQLError as exc:
        raise _mysql_error(spec, exc) from exc
    finally:
        conn.close()


def _mysql_error(spec: CheckSpec, exc: BaseException) -> CheckFailed | OSError:
    # pymysql reports a refused or reset TCP connection as OperationalError 2003/2013
    # wrapping the OSError; hand the OSError on so every service words it alike.
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError):
        return cause
    if len(getattr(exc, "args", ())) >= 2:
        return CheckFailed(f"MySQL: {exc.args[0]} {excerpt(str(exc.args[1]), 120)}")
    return driver_error(spec.service, exc)


async def _oracle(spec: CheckSpec, query: str) -> Any:
    try:
        conn = await oracledb.connect_async(
            user=spec.login, password=spec.passwd, host=spec.address, port=spec.port,
            sid=spec.database or None, tcp_connect_timeout=spec.deadline,
        )
    except oracledb.Error as exc:
        # DPY-6005 wraps the socket error; hand that on so it reads like every other service's.
        if isinstance(exc.__cause__, OSError):
            raise exc.__cause__ from exc
        raise driver_error(spec.service, exc) from exc
    try:
        with conn.cursor() as cursor:
            await cursor.execute(query)
            return await cursor.fetchone()
    except oracledb.Error as exc:
        raise driver_error(spec.service, exc) from exc
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


DRIVERS = {"pgsql": _pgsql, "mysql": _mysql, "oracle": _oracle}


async def _sql(spec: CheckSpec) -> str:
    for module in NEEDS[spec.service]:
        if _LOADED[module] is None:
            raise CheckFailed(optional.missing(module, spec.service))
    query = query_of(spec)
    try:
        row = await DRIVERS[spec.service](spec, query)
    except CheckFailed:
        raise
    except OSError:
        raise
    except Exception as exc:
        # Drivers raise their own types for protocol garbage; any of them means "not healthy".
        raise driver_error(spec.service, exc) from exc
    if row is None:
        raise CheckFailed(f"{PRODUCT[spec.service]}: request returned no row")
    return f"{PRODUCT[spec.service]}: request returned a row"


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    """Negotiate check for the SQL services; never raises for a server's behaviour."""
    if spec.service not in DRIVERS:
        raise ValueError(f"healthd.checks.sql does not check service {spec.service!r}")
    return await bounded(spec, lambda: _sql(spec))
