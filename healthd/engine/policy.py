"""The desired IPVS table as a pure function of config, health, maintenance and the adopted kernel table.

No I/O and no clock: the same inputs always give the same table, so start-up,
check verdicts, reload and a dry run all go through this one function.

Rules (ldirectord's, with healthd's fixes):
- An up real gets its configured weight. A down real, or one in maintenance, is
  removed, or kept at weight 0 when the virtual is `quiescent`; such a quiesced
  entry is re-created after someone removed it only with `readdquiescent=yes`.
- A real whose check never gave a verdict (state unknown) gets no traffic: it is
  absent, except that an entry the kernel already had when healthd started (or
  reloaded) keeps its kernel weight while its first checks run.
- `checktype=on` is always up. `checktype=off` is never checked and stays unknown
  forever, which is ldirectord's behaviour: an entry already in the kernel keeps
  its weight; otherwise the real counts as down (weight 0 when quiescent, else
  absent), as ldirectord sets every real it finds missing at start.
- The fallback server (the virtual's, else the global `fallback`/`fallback6` of
  the virtual's family, port defaulting to the virtual's) is added with its own
  weight when no real of the virtual can take traffic, and removed when one can.
  It switches on only on evidence: while some checked real is still waiting for
  its first verdict it stays as it was, so a fresh start does not flash the
  fallback on, and a reload that adds a real does not switch it off.
- For gate/ipip reals of an address:port virtual the destination port is the
  virtual's port, as ipvsadm sets it (the kernel ignores it for those methods).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass

from healthd.checks.spec import CheckSpec, CheckType
from healthd.config.model import Config, Fallback, GlobalSettings, Real, Virtual
from healthd.engine.health import State, fixed_state
from healthd.ipvs.model import (
    Dest,
    DestKey,
    Entry,
    Family,
    Forward,
    Service,
    ServiceKey,
    ServiceProtocol,
    Table,
)

HealthLookup = Callable[[CheckSpec], State]
# Reals forced down by maintenancedir, as (address, port) of the real (its configured port).
Maintenance = Set[tuple[str, int]]

_SCHED_FLAGS: dict[str, int] = {
    "flag-1": 1, "flag-2": 2, "flag-3": 3,
    "sh-fallback": 1, "sh-port": 2,
    "mh-fallback": 1, "mh-port": 2,
}


@dataclass(frozen=True, slots=True)
class VirtualPlan:
    """What policy decided for one virtual."""

    entry: Entry
    fallback_active: bool  # no real can take traffic: fallback server and command are on


@dataclass(frozen=True, slots=True)
class Desired:
    table: Table
    managed: frozenset[ServiceKey]
    fallback_active: frozenset[ServiceKey]


def service_key(virtual: Virtual) -> ServiceKey:
    family = Family.INET6 if virtual.family == 6 else Family.INET
    protocol = virtual.protocol
    if protocol is ServiceProtocol.FWM:
        return ServiceKey(family, protocol, fwmark=virtual.fwmark or 0)
    return ServiceKey(family, protocol, virtual.address or "", virtual.port)


def prefix_length(netmask: str | None, family: int) -> int | None:
    """ldirectord's `netmask` (a dotted IPv4 mask, or an IPv6 prefix length) as a prefix length."""
    if netmask is None:
        return None
    text = netmask.strip().lstrip("/")
    if text.isdigit():
        return int(text)
    if family == 4:
        return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
    raise ValueError(f"netmask {netmask!r} is not a prefix length")


def service_of(virtual: Virtual) -> Service:
    return Service(
        key=service_key(virtual),
        scheduler=virtual.scheduler,
        persistent=virtual.persistent,
        netmask=prefix_length(virtual.netmask, virtual.family) if virtual.persistent is not None else None,
        one_packet=virtual.ops,
        sched_flags=frozenset(_SCHED_FLAGS[f] for f in virtual.schedflags if f in _SCHED_FLAGS),
    )


def dest_port(key: ServiceKey, forward: Forward, port: int) -> int:
    if key.protocol is not ServiceProtocol.FWM and forward is not Forward.MASQ:
        return key.port
    return port


def fallback_of(virtual: Virtual, settings: GlobalSettings) -> Fallback | None:
    if virtual.fallback is not None:
        return virtual.fallback
    return settings.fallback6 if virtual.family == 6 else settings.fallback


def _fallback_key(key: ServiceKey, fallback: Fallback, virtual: Virtual) -> DestKey:
    port = fallback.port or virtual.port  # a fallback without a port serves on the virtual's
    return DestKey(fallback.address, dest_port(key, fallback.forward, port))


def fallback_dest_key(virtual: Virtual, settings: GlobalSettings) -> DestKey | None:
    """Where the virtual's fallback server sits in the table, if it has one."""
    fallback = fallback_of(virtual, settings)
    return None if fallback is None else _fallback_key(service_key(virtual), fallback, virtual)


def plan_virtual(
    virtual: Virtual,
    settings: GlobalSettings,
    health: HealthLookup,
    maintenance: Maintenance,
    adopted: Entry | None,
    fallback_was_active: bool,
    previous: Entry | None = None,
) -> VirtualPlan:
    """The desired entry of one virtual and whether its fallback is on.

    `previous` (the virtual's last plan, if any) changes nothing in the result: an equal
    destination is that plan's own object again, so that a replan after one real changed builds
    one new Dest, and the reconciler's diff finds the others unchanged by identity.
    """
    service = service_of(virtual)
    key = service.key
    dests: dict[DestKey, Dest] = {}
    reuse = previous.dests if previous is not None else {}
    alive = False  # some real can take traffic (or, being up, could with a weight)
    pending = False  # some checked real still waits for its first verdict
    for real in virtual.reals:
        forward = real.forward
        dkey = DestKey(real.address, dest_port(key, forward, real.port))
        in_maintenance = (real.address, real.port) in maintenance
        state = State.DOWN if in_maintenance else health(real.check)
        if state is State.UP:
            alive = True
            dests[dkey] = _dest(dkey, real, forward, real.weight, reuse=reuse.get(dkey))
        elif state is State.DOWN:
            if virtual.quiescent:
                dests[dkey] = _dest(dkey, real, forward, 0, readd=settings.readdquiescent,
                                    reuse=reuse.get(dkey))
        else:
            kernel = adopted.dests.get(dkey) if adopted is not None else None
            if kernel is not None:
                dests[dkey] = _dest(dkey, real, forward, kernel.weight)
                alive = alive or kernel.weight > 0
            elif real.check.type is CheckType.OFF:
                # ldirectord starts a real it never checks as down: quiesced at weight 0, or absent
                if virtual.quiescent:
                    dests[dkey] = _dest(dkey, real, forward, 0, readd=settings.readdquiescent)
            else:
                pending = True
    active = not alive and (fallback_was_active or not pending)
    fallback = fallback_of(virtual, settings)
    if active and fallback is not None:
        fkey = _fallback_key(key, fallback, virtual)
        dests[fkey] = Dest(fkey.address, fkey.port, fallback.forward, fallback.weight)
    return VirtualPlan(Entry(service, dests), active)


def _dest(key: DestKey, real: Real, forward: Forward, weight: int, readd: bool = True,
          reuse: Dest | None = None) -> Dest:
    if (reuse is not None and reuse.weight == weight and reuse.forward is forward and reuse.readd is readd
            and reuse.upper == real.upper and reuse.lower == real.lower):
        return reuse  # address and port are the key's
    return Dest(key.address, key.port, forward, weight, real.upper, real.lower, readd)


def desired_table(
    config: Config,
    health: HealthLookup,
    maintenance: Maintenance = frozenset(),
    adopted: Table | None = None,
    fallback_was_active: Iterable[ServiceKey] = (),
) -> Desired:
    """The whole desired table. `managed` is every service of the config."""
    adopted = adopted or {}
    was = frozenset(fallback_was_active)
    table: dict[ServiceKey, Entry] = {}
    active: set[ServiceKey] = set()
    for virtual in config.virtuals:
        key = service_key(virtual)
        plan = plan_virtual(virtual, config.settings, health, maintenance, adopted.get(key), key in was)
        table[key] = plan.entry
        if plan.fallback_active:
            active.add(key)
    return Desired(table, frozenset(table), frozenset(active))


def health_from(states: Mapping[CheckSpec, State]) -> HealthLookup:
    """A lookup over a plain mapping (tests, dry runs): on/off fixed, anything else unknown."""

    def lookup(spec: CheckSpec) -> State:
        fixed = fixed_state(spec)
        return fixed if fixed is not None else states.get(spec, State.UNKNOWN)

    return lookup
