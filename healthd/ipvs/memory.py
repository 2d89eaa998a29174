"""An IPVS table in memory with the kernel's contract: for unit tests and `healthd demo`.

It accepts and refuses exactly what the kernel does for the settings healthd uses (the shared
contract suite runs against both), and dumps what the kernel would dump back.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import replace

from healthd.ipvs.backend import AlreadyExists, IPVSError, NotFound
from healthd.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    EditDest,
    EditService,
    Entry,
    Operation,
    Service,
    ServiceKey,
    Table,
    describe_op,
)

# what a stock Debian kernel ships as ip_vs_<name> modules
SCHEDULERS = frozenset({"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf",
                        "mh"})
PERSISTENCE_ENGINES = frozenset({"sip"})


class MemoryTable:
    """A Backend kept in a dict."""

    def __init__(self, schedulers: frozenset[str] = SCHEDULERS) -> None:
        self.schedulers = schedulers
        self._services: dict[ServiceKey, Service] = {}
        self._dests: dict[ServiceKey, dict[DestKey, Dest]] = {}

    async def dump(self) -> Table:
        return {k: Entry(svc, dict(self._dests[k])) for k, svc in self._services.items()}

    async def apply(self, op: Operation) -> None:
        match op:
            case AddService(service):
                self._check_service(op, service)
                if service.key in self._services:
                    raise AlreadyExists(f"{describe_op(op)}: already there", errno.EEXIST)
                self._services[service.key] = service.normalized()
                self._dests[service.key] = {}
            case EditService(service):
                self._need_service(op, service.key)
                self._check_service(op, service)
                self._services[service.key] = service.normalized()
            case DeleteService(key):
                self._need_service(op, key)
                del self._services[key], self._dests[key]
            case AddDest(key, dest):
                self._need_service(op, key)
                self._check_dest(op, dest)
                if dest.key in self._dests[key]:
                    raise AlreadyExists(f"{describe_op(op)}: already there", errno.EEXIST)
                self._dests[key][dest.key] = replace(dest, readd=True)
            case EditDest(key, dest):
                self._need_service(op, key)
                self._check_dest(op, dest)
                self._need_dest(op, key, dest.key)
                self._dests[key][dest.key] = replace(dest, readd=True)
            case DeleteDest(key, dest_key):
                self._need_service(op, key)
                self._need_dest(op, key, dest_key)
                del self._dests[key][dest_key]
            case _:
                raise TypeError(f"not an IPVS operation: {op!r}")

    async def apply_all(self, ops: Sequence[Operation]) -> list[IPVSError | None]:
        results: list[IPVSError | None] = []
        for op in ops:
            try:
                await self.apply(op)
            except IPVSError as e:
                results.append(e)
            else:
                results.append(None)
        return results

    async def flush(self) -> None:
        self._services.clear()
        self._dests.clear()

    async def close(self) -> None:
        pass

    def _need_service(self, op: Operation, key: ServiceKey) -> None:
        if key not in self._services:
            raise NotFound(f"{describe_op(op)}: no such service", errno.ESRCH)

    def _need_dest(self, op: Operation, key: ServiceKey, dest_key: DestKey) -> None:
        if dest_key not in self._dests[key]:
            raise NotFound(f"{describe_op(op)}: no such real server", errno.ENOENT)

    def _check_service(self, op: Operation, service: Service) -> None:
        if service.scheduler not in self.schedulers:
            raise IPVSError(f"{describe_op(op)}: the kernel has no scheduler {service.scheduler!r}",
                            errno.ENOENT)
        if service.pe_name and service.pe_name not in PERSISTENCE_ENGINES:
            raise IPVSError(f"{describe_op(op)}: the kernel has no persistence engine {service.pe_name!r}",
                            errno.ENOENT)
        if service.netmask is not None and not 1 <= service.netmask <= service.full_netmask:
            raise IPVSError(f"{describe_op(op)}: netmask /{service.netmask} is out of range", errno.EINVAL)

    def _check_dest(self, op: Operation, dest: Dest) -> None:
        if dest.weight < 0 or dest.lower > dest.upper:
            # the kernel: weight below zero, or a lower threshold above the upper one
            raise IPVSError(f"{describe_op(op)}: weight or thresholds out of range", errno.ERANGE)
