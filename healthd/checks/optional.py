"""Python libraries only some checks need: where each comes from, and the sentence when one is missing.

healthd's core (HTTP, TCP, ping, external checks, the IPVS table) needs no such library. The
Debian package recommends or suggests these instead of depending on them, so a director that
checks only web servers does not pull in database drivers; a check whose library is absent is
down with this sentence as its detail (in the journal and `healthd status`), instead of a crash.
"""

from __future__ import annotations

# import name -> (Debian package, PyPI project)
SOURCES: dict[str, tuple[str, str]] = {
    "dns": ("python3-dnspython", "dnspython"),
    "ldap3": ("python3-ldap3", "ldap3"),
    "asyncpg": ("python3-asyncpg", "asyncpg"),
    "aiomysql": ("python3-aiomysql", "aiomysql"),
    "pymysql": ("python3-pymysql", "pymysql"),
    "oracledb": ("python3-oracledb", "oracledb"),
}


def is_optional(module: str | None) -> bool:
    return (module or "").split(".")[0] in SOURCES


def missing(module: str, service: str) -> str:
    """The one-line reason a check of `service` cannot run without `module`."""
    top = module.split(".")[0]
    deb, pypi = SOURCES.get(top, (f"python3-{top}", top))
    return (f"service={service} needs the Python module {top}, which is not installed "
            f"(apt install {deb}, or pip install {pypi} in healthd's venv)")
