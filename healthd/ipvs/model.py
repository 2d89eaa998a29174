"""Value types for the IPVS table: services, destinations, whole tables and the operations that change them.

This is the only vocabulary the IPVS layer speaks. It knows nothing about
ldirectord.cf or checks; healthd.engine.policy translates config + health into it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from healthd.vocab import Forward, ServiceProtocol, host_port


class Family(enum.IntEnum):
    """Address family as the kernel numbers it."""

    INET = 2  # socket.AF_INET
    INET6 = 10  # socket.AF_INET6




@dataclass(frozen=True, order=True, slots=True)
class ServiceKey:
    """What identifies a virtual service in the kernel.

    Addresses are canonical text (ipaddress.ip_address(...).compressed), never bracketed.
    """

    family: Family
    protocol: ServiceProtocol
    address: str = ""  # "" for fwmark services
    port: int = 0  # 0 for fwmark services
    fwmark: int = 0  # > 0 only for ServiceProtocol.FWM

    def __str__(self) -> str:
        """ipvsadm's spelling: 'TCP 10.0.0.1:80', 'UDP [2001:db8::1]:53', 'FWM 99'."""
        if self.protocol is ServiceProtocol.FWM:
            suffix = " IPv6" if self.family is Family.INET6 else ""
            return f"FWM {self.fwmark}{suffix}"
        return f"{self.protocol.value.upper()} {host_port(self.address, self.port)}"


@dataclass(frozen=True, slots=True)
class Service:
    """A virtual service with every setting healthd manages."""

    key: ServiceKey
    scheduler: str = "wlc"
    persistent: int | None = None  # persistence timeout in seconds; None = not persistent
    netmask: int | None = None  # persistence granularity as a prefix length; None = 32 / 128
    one_packet: bool = False  # ops: one-packet scheduling (UDP)
    sched_flags: frozenset[int] = frozenset()  # scheduler flags 1..3 (ipvsadm -b flag-1 ...)
    pe_name: str = ""  # persistence engine ("sip"), "" for none


    @property
    def full_netmask(self) -> int:
        return 128 if self.key.family is Family.INET6 else 32

    def normalized(self) -> Service:
        """The same service as the kernel reports it back: a full-length netmask reads as None."""
        if self.netmask == self.full_netmask:
            return replace(self, netmask=None)
        return self


@dataclass(frozen=True, order=True, slots=True)
class DestKey:
    address: str
    port: int
    # the hash, computed once: every diff, plan and belief looks reals up by their key
    # (10,000 of them in a full diff); a generated __hash__ rebuilt a tuple each time
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.address, self.port)))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return host_port(self.address, self.port)


@dataclass(frozen=True, slots=True)
class Dest:
    """A real server inside a virtual service."""

    address: str
    port: int
    forward: Forward = Forward.GATE
    weight: int = 1
    upper: int = 0  # upper connection threshold, 0 = none
    lower: int = 0  # lower connection threshold, 0 = none
    # Only meaningful in a *desired* table: False for a quiesced (weight 0) real that
    # must not be re-added if it vanished from the kernel (readdquiescent=no).
    readd: bool = field(default=True, compare=False)
    # Only meaningful in a *dumped* table: the kernel's connection counters (ipvsadm's
    # ActiveConn, InActConn); never compared, never sent.
    active_conns: int = field(default=0, compare=False)
    inactive_conns: int = field(default=0, compare=False)

    @property
    def key(self) -> DestKey:
        return DestKey(self.address, self.port)


@dataclass(frozen=True, slots=True)
class Entry:
    """One service and its destinations."""

    service: Service
    dests: Mapping[DestKey, Dest]


# A whole table (desired or dumped from the kernel). Treat as immutable.
Table = Mapping[ServiceKey, Entry]


@dataclass(frozen=True, slots=True)
class AddService:
    service: Service


@dataclass(frozen=True, slots=True)
class EditService:
    service: Service  # the whole new service: IPVS "set" replaces every field


@dataclass(frozen=True, slots=True)
class DeleteService:
    key: ServiceKey


@dataclass(frozen=True, slots=True)
class AddDest:
    service: ServiceKey
    dest: Dest


@dataclass(frozen=True, slots=True)
class EditDest:
    service: ServiceKey
    dest: Dest  # the whole new destination


@dataclass(frozen=True, slots=True)
class DeleteDest:
    service: ServiceKey
    dest: DestKey


Operation = AddService | EditService | DeleteService | AddDest | EditDest | DeleteDest


def describe_op(op: Operation) -> str:
    """The operation and its object in words: 'add real 10.0.0.2:80 to TCP 10.0.0.1:80 (gate, weight 1)'."""
    match op:
        case AddService(service):
            return f"add service {service.key} (scheduler {service.scheduler})"
        case EditService(service):
            return f"edit service {service.key} (scheduler {service.scheduler})"
        case DeleteService(key):
            return f"delete service {key}"
        case AddDest(service, dest):
            return f"add real {dest.key} to {service} ({dest.forward.value}, weight {dest.weight})"
        case EditDest(service, dest):
            return f"edit real {dest.key} in {service} ({dest.forward.value}, weight {dest.weight})"
        case DeleteDest(service, dest_key):
            return f"delete real {dest_key} from {service}"
    raise TypeError(f"not an IPVS operation: {op!r}")
