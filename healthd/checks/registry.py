"""The one entry point the engine uses to run a check: CheckRunner.run(spec) -> Outcome.

Contract (every check module follows it):
- A negotiate module `healthd/checks/<name>.py` exposes
  `async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome`.
- run() never raises for anything a real server does; every failure is an Outcome
  with ok=False and a one-line detail.
- run() returns within spec.deadline (+ a few ms): the deadline is enforced here,
  by cancelling the module's coroutine, not trusted to the protocol code.
- Shared resources (TLS contexts, sockets) live in the CheckContext owned by the
  runner, opened by start() and released by close(), never one per check.
"""

from __future__ import annotations

from healthd.checks.context import CheckContext
from healthd.checks.spec import CheckSpec, Outcome

# service -> module under healthd.checks that implements its negotiate check.
SERVICE_MODULES: dict[str, str] = {
    "http": "http", "https": "http", "http_proxy": "http",
    "simpletcp": "simpletcp",
    "dns": "dns",
    "smtp": "mail", "submission": "mail", "pop": "mail", "pops": "mail",
    "imap": "mail", "imaps": "mail", "nntp": "mail",
    "ftp": "ftp",
    "ldap": "ldap", "ldaps": "ldap",
    "mysql": "sql", "pgsql": "sql", "oracle": "sql",
    "sip": "sip",
    "radius": "radius",
}

# Services whose negotiate check exists ("none" needs no module: always up).
# The config layer rejects any other service with "not supported yet" rather
# than letting it pass silently. Grows as modules land.
SUPPORTED_SERVICES: frozenset[str] = frozenset({"none", "http", "https", "http_proxy", "simpletcp",
    "dns", "smtp", "submission", "pop", "pops", "imap", "imaps", "nntp", "ftp",
    "ldap", "ldaps", "mysql", "pgsql", "sip", "radius"})  # not oracle: never run against a real server


class CheckRunner:
    """Runs checks; one instance per daemon."""

    def __init__(self) -> None:
        self.ctx = CheckContext()

    async def start(self) -> None:
        """Open shared resources."""

    async def close(self) -> None:
        """Release shared resources."""

    async def run(self, spec: CheckSpec) -> Outcome:
        """Run one check of `spec` within spec.deadline. Never raises."""
        raise NotImplementedError
