"""The one entry point the engine uses to run a check: CheckRunner.run(spec) -> Outcome.

Contract (every check module follows it):
- run() never raises for anything a real server does; every failure is an Outcome
  with ok=False and a one-line detail.
- run() returns within spec.deadline (+ a few ms): the deadline is enforced here,
  not trusted to the protocol code.
- Shared resources (TLS contexts, HTTP session, ICMP sockets) live in the runner,
  opened by start() and released by close(), never one per check.
"""

from __future__ import annotations

from healthd.checks.spec import CheckSpec, Outcome

# Services whose negotiate check exists. The config layer rejects any other
# service with "not supported yet" rather than letting it pass silently.
SUPPORTED_SERVICES: frozenset[str] = frozenset({"none"})


class CheckRunner:
    """Runs checks; one instance per daemon."""

    async def start(self) -> None:
        """Open shared resources."""

    async def close(self) -> None:
        """Release shared resources."""

    async def run(self, spec: CheckSpec) -> Outcome:
        """Run one check of `spec` within spec.deadline. Never raises."""
        raise NotImplementedError
