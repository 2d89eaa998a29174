"""Table entries the kernel refused: which are held back, the kernel's reason, and when each is tried again.

A refused real server or service costs only that entry (ldirectord's failed `ipvsadm` call
costs the same): the reconciler applies the rest of the table, records the refusal here and
leaves the entry out of later syncs until its back-off expires (1 s, doubling up to 5 min),
then tries it again. An entry whose desired content changed (a reload fixed its thresholds)
is tried at once.
"""

from __future__ import annotations

import errno as errnos
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from healthd.ipvs.backend import IPVSError
from healthd.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    DestKey,
    EditDest,
    EditService,
    Entry,
    Operation,
    ServiceKey,
    Table,
    describe_op,
)

EntryKey = tuple[ServiceKey, DestKey | None]  # a real server of a service, or (None) the service itself


def entry_key(op: Operation) -> EntryKey:
    match op:
        case AddService(service) | EditService(service):
            return service.key, None
        case DeleteService(key):
            return key, None
        case AddDest(service, dest) | EditDest(service, dest):
            return service, dest.key
        case DeleteDest(service, dest_key):
            return service, dest_key
    raise TypeError(f"not an IPVS operation: {op!r}")


def kernel_reason(error: IPVSError, op: Operation | None = None) -> str:
    """The kernel's words for the error: `Numerical result out of range (ERANGE)`, or the backend's
    more precise reading of the errno (`the kernel has no scheduler 'x' (ENOENT)`)."""
    text = str(error)
    prefix = f"{describe_op(op)}: " if op is not None else ""
    detail = text[len(prefix):] if prefix and text.startswith(prefix) else ""
    if not error.errno:
        return detail or text
    name = errnos.errorcode.get(error.errno, str(error.errno))
    return f"{detail or os.strerror(error.errno)} ({name})"


@dataclass(frozen=True, slots=True)
class Refusal:
    key: EntryKey
    operation: Operation  # the last operation refused for this entry
    reason: str  # the kernel's words, see kernel_reason
    errno: int
    since: float  # wall-clock time of the first refusal
    attempts: int
    retry_at: float  # monotonic time of the next attempt

    @property
    def what(self) -> str:
        return describe_op(self.operation)

    def sentence(self) -> str:
        """`add real 10.0.0.2:80 to TCP 10.0.0.1:80 (gate, weight 1): refused by the kernel: ...`."""
        return f"{self.what}: refused by the kernel: {self.reason}"


class RefusalBook:
    """The refused entries of one table, with their back-off."""

    def __init__(self, first: float = 1.0, ceiling: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.first = first
        self.ceiling = ceiling
        self._clock = clock
        self._wall = wall
        self._refused: dict[EntryKey, Refusal] = {}

    def refuse(self, op: Operation, error: IPVSError) -> tuple[Refusal, bool]:
        """Record that the kernel refused `op`; the refusal, and whether it is news (a first refusal,
        or a different reason than last time) worth a log line."""
        key = entry_key(op)
        now = self._clock()
        old = self._refused.get(key)
        reason = kernel_reason(error, op)
        if old is None:
            refusal = Refusal(key, op, reason, error.errno, self._wall(), 1, now + self.first)
        else:
            delay = min(self.ceiling, self.first * 2 ** old.attempts)
            refusal = replace(old, operation=op, reason=reason, errno=error.errno, attempts=old.attempts + 1,
                              retry_at=now + delay)
        self._refused[key] = refusal
        return refusal, old is None or old.reason != reason

    def accepted(self, op: Operation) -> Refusal | None:
        """`op` went through, so its entry is no longer refused; the refusal this ends, if any."""
        if not self._refused:  # the usual case, once per operation of a 10,000-real start: no lookup
            return None
        return self._refused.pop(entry_key(op), None)

    def held(self, op: Operation) -> bool:
        """Leave `op` out of this sync: its entry was refused, the back-off runs, and the operation is
        the same as the one refused (a changed one is tried at once). A service's real servers wait
        with their service."""
        if not self._refused:
            return False
        service, dest = entry_key(op)
        if dest is not None:
            parent = self._refused.get((service, None))
            if parent is not None and isinstance(parent.operation, AddService):
                return True
        refusal = self._refused.get((service, dest))
        return refusal is not None and refusal.operation == op and self._clock() < refusal.retry_at

    def keep_only(self, wanted: Callable[[EntryKey], bool]) -> None:
        """Forget refusals of entries no longer wanted (a reload removed them)."""
        self._refused = {k: r for k, r in self._refused.items() if wanted(k)}

    def next_retry(self) -> float | None:
        """Seconds until the earliest held entry may be tried again; None when none is held."""
        if not self._refused:
            return None
        return max(0.0, min(r.retry_at for r in self._refused.values()) - self._clock())

    def entries(self) -> list[Refusal]:
        return sorted(self._refused.values(), key=lambda r: (str(r.key[0]), str(r.key[1] or "")))

    def __len__(self) -> int:
        return len(self._refused)


def without_refused(table: Table, refused: Iterable[Refusal]) -> Table:
    """`table` less the entries the kernel refused to add: what the kernel holds of it."""
    refused = list(refused)
    gone_services = {r.key[0] for r in refused if r.key[1] is None and isinstance(r.operation, AddService)}
    gone_dests = {r.key for r in refused if r.key[1] is not None and isinstance(r.operation, AddDest)}
    if not gone_services and not gone_dests:
        return table
    out: dict[ServiceKey, Entry] = {}
    for key, entry in table.items():
        if key in gone_services:
            continue
        dests = {k: d for k, d in entry.dests.items() if (key, k) not in gone_dests}
        out[key] = entry if len(dests) == len(entry.dests) else Entry(entry.service, dests)
    return out
