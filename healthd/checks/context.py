"""Resources shared by every check run: created once per daemon, never per check."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from healthd.checks.icmp import Pinger
from healthd.checks.poller import Poller
from healthd.checks.tls import TlsContexts
from healthd.checks.tlsresume import TlsSessions


@dataclass
class CheckContext:
    # SSLContexts per TLS policy (healthd.checks.tls): built once, shared by the checks that use them
    tls: TlsContexts = field(default_factory=TlsContexts)
    # the TLS session to resume per real and policy (healthd.checks.tlsresume), for checks over TLS
    sessions: TlsSessions = field(default_factory=TlsSessions)
    body_limit: int = 64 * 1024  # bytes of a response body read before deciding
    output_limit: int = 4 * 1024  # bytes of an external command's output kept (the rest is drained)
    kill_grace: float = 2.0  # seconds between SIGTERM and SIGKILL for an external command past its deadline
    # ICMP echo over raw sockets, opened on the first ping check (needs root or CAP_NET_RAW).
    pinger: Pinger = field(default_factory=Pinger)
    # readiness of check sockets (HTTP), through one epoll instance of our own
    poller: Poller = field(default_factory=Poller)
    # Background work that outlives one check run (killing an overdue external command);
    # kept here so that close() can finish it and nothing is garbage-collected mid-flight.
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coro: object) -> None:
        """Run `coro` in the background, owned by this context."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def close(self) -> None:
        """Finish background work and release sockets."""
        if self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)
        self.pinger.close()
        self.poller.close()
