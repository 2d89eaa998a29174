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
from concurrent.futures import ThreadPoolExecutor

RealId = tuple[str, int]  # (address, configured port) of a real

# Leading label of a host name, as ldirectord extracts the short name.
_SHORT = re.compile(r"^([a-z][a-z0-9\-]+)\.")


def names_of(address: str, port: int, hostname: str | None) -> frozenset[str]:
    """Every file name that puts this real into maintenance."""
    hosts = [address]
    if ":" in address:  # IPv6: also accept the bracketed spelling ldirectord uses
        hosts.append(f"[{address}]")
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
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="healthd-resolve")
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
