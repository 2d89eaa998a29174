"""maintenancedir: a file named after a real (ip:port, ip, fqdn:port, fqdn, short:port, short) forces it down.

ldirectord does a blocking reverse lookup for every real on every check. healthd
resolves each real's name once, when the configuration loads, in worker threads
with a deadline, and rescans the directory only when its mtime changes (or
changed very recently, since a timestamp can hide two changes in one tick).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping

from healthd import threads, vocab

RealId = tuple[str, int]  # (address, configured port) of a real

# Leading label of a host name, as ldirectord extracts the short name.
_SHORT = re.compile(r"^([a-z][a-z0-9\-]+)\.")


def names_of(address: str, port: int, hostname: str | None) -> frozenset[str]:
    """Every file name that puts this real into maintenance."""
    hosts = [address]
    if ":" in address:  # IPv6: also accept the bracketed spelling ldirectord uses
        hosts.append(vocab.host(address))
    if hostname:
        hosts.append(hostname)
        short = _SHORT.match(hostname)
        if short:
            hosts.append(short.group(1))
    names: set[str] = set()
    for host in hosts:
        names.add(host)
        names.add(f"{host}:{port}")
    return frozenset(names)


def _reverse(address: str) -> str | None:
    try:
        return socket.gethostbyaddr(address)[0].lower()
    except (OSError, UnicodeError):
        return None


async def resolve_names(
    addresses: Iterable[str],
    *,
    deadline: float = 5.0,
    workers: int = 4,
    lookup: Callable[[str], str | None] = _reverse,
) -> dict[str, str]:
    """Reverse-resolve addresses in worker threads; whatever is not done by `deadline` stays unnamed."""
    todo = sorted(set(addresses))
    if not todo:
        return {}
    loop = asyncio.get_running_loop()
    pool = threads.pool(workers, "healthd-resolve")
    futures = {addr: loop.run_in_executor(pool, lookup, addr) for addr in todo}
    try:
        await asyncio.wait(futures.values(), timeout=deadline)
    finally:
        # Never wait for a stuck resolver: abandon queued lookups, let running ones finish alone.
        pool.shutdown(wait=False, cancel_futures=True)
    names: dict[str, str] = {}
    for addr, fut in futures.items():
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            name = fut.result()
            if name:
                names[addr] = name
        else:
            fut.cancel()
    return names


class MaintenanceDir:
    """Which reals a maintenance directory forces down; rescanned cheaply on demand."""

    # A directory changed less than this long ago is listed again even if its mtime did not move.
    SETTLE = 2.0

    def __init__(
        self, path: str, reals: Iterable[RealId], hostnames: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._listing: frozenset[str] = frozenset()
        self.error: str | None = None  # why the directory cannot be read, if it cannot
        self.down: frozenset[RealId] = frozenset()
        self.set_reals(reals, hostnames or {})

    def set_reals(self, reals: Iterable[RealId], hostnames: Mapping[str, str]) -> None:
        """New reals or newly resolved names: recompute from the last listing."""
        self._names = {r: names_of(r[0], r[1], hostnames.get(r[0])) for r in set(reals)}
        self._match()

    def scan(self) -> bool:
        """Look at the directory again if it may have changed; True when `down` changed."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            stamp = None
            listing: frozenset[str] = frozenset()
            self.error = f"cannot read maintenancedir {self.path}: {exc.strerror}"
        else:
            stamp = (st.st_ino, st.st_mtime_ns)
            recent = time.time() - st.st_mtime < self.SETTLE
            if stamp == self._stamp and not recent:
                return False
            try:
                listing = frozenset(os.listdir(self.path))
                self.error = None
            except OSError as exc:
                listing = frozenset()
                self.error = f"cannot read maintenancedir {self.path}: {exc.strerror}"
        self._stamp = stamp
        if listing == self._listing:
            return False
        self._listing = listing
        return self._match()

    def _match(self) -> bool:
        listing = self._listing
        down = frozenset(r for r, names in self._names.items() if not names.isdisjoint(listing))
        changed = down != self.down
        self.down = down
        return changed


class MaintenanceWatch:
    """The engine's view of maintenancedir: which reals are forced down, kept current by a polling task.

    `on_change(changed)` gets the reals that entered or left maintenance (compare with
    `down`); `on_notice(message)` gets problems worth one log line. Host names of the reals
    are resolved once per configuration, in the background, with a deadline.
    """

    def __init__(
        self,
        on_change: Callable[[frozenset[RealId]], None],
        on_notice: Callable[[str], None],
        *,
        period: float = 1.0,
        resolve_deadline: float = 5.0,
        resolver: Callable[[str], str | None] | None = None,
    ) -> None:
        self._on_change = on_change
        self._on_notice = on_notice
        self.period = period
        self.resolve_deadline = resolve_deadline
        self._resolver = resolver
        self._dir: MaintenanceDir | None = None
        self._hostnames: dict[str, str] = {}
        self._reported: frozenset[RealId] = frozenset()
        self._resolving: asyncio.Task[None] | None = None
        self._polling: asyncio.Task[None] | None = None

    @property
    def down(self) -> frozenset[RealId]:
        return self._dir.down if self._dir is not None else frozenset()

    def configure(self, path: str | None, reals: list[RealId]) -> None:
        """Watch `path` (None: no maintenancedir) for `reals`; reals already listed are reported now."""
        if path is None:
            self._dir = None
            return
        if self._dir is None or self._dir.path != path:
            self._dir = MaintenanceDir(path, reals, self._hostnames)
        else:
            self._dir.set_reals(reals, self._hostnames)
        self._dir.scan()
        self._report()
        unresolved = {address for address, _port in reals} - set(self._hostnames)
        loop = asyncio.get_running_loop()
        if unresolved:
            if self._resolving is not None:
                self._resolving.cancel()
            self._resolving = loop.create_task(self._resolve(unresolved, reals))
        if self._polling is None:
            self._polling = loop.create_task(self._poll(), name="healthd-maintenance")

    async def stop(self) -> None:
        tasks = [t for t in (self._polling, self._resolving) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._polling = self._resolving = None

    async def _resolve(self, addresses: set[str], reals: list[RealId]) -> None:
        kwargs = {"lookup": self._resolver} if self._resolver is not None else {}
        names = await resolve_names(addresses, deadline=self.resolve_deadline, **kwargs)
        self._hostnames.update(names)
        missing = len(addresses) - len(names)
        if missing:
            self._on_notice(f"maintenancedir: no host name found for {missing} real address(es)")
        if self._dir is not None:
            self._dir.set_reals(reals, self._hostnames)
            self._report()

    async def _poll(self) -> None:
        reported: str | None = None
        while self._dir is not None:
            if self._dir.scan():
                self._report()
            if self._dir.error != reported:
                reported = self._dir.error
                if reported:
                    self._on_notice(reported)
            await asyncio.sleep(self.period)
        self._polling = None

    def _report(self) -> None:
        down = self.down
        changed = down ^ self._reported
        self._reported = down
        if changed:
            self._on_change(changed)
