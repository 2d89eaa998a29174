"""healthd's vocabulary: the enums every layer shares (config, checks, engine, IPVS), one definition each.

Read this file first. Config resolves ldirectord.cf into these values once; no later
layer converts strings again. Each type says in one line what it names.
"""

from __future__ import annotations

import enum


class Forward(enum.StrEnum):
    """How IPVS forwards packets to a real server (`real=... gate|masq|ipip`, ipvsadm -g / -m / -i)."""

    MASQ = "masq"
    GATE = "gate"
    IPIP = "ipip"


class ServiceProtocol(enum.StrEnum):
    """What a virtual service matches: a transport protocol, or a firewall mark (`protocol=`)."""

    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"  # IPVS knows it; ldirectord.cf cannot ask for it
    FWM = "fwm"  # a firewall-mark service: no address, port 0


class CheckType(enum.StrEnum):
    """ldirectord's `checktype`; a numeric checktype is NEGOTIATE with CheckSpec.connect_every > 0."""

    NEGOTIATE = "negotiate"
    CONNECT = "connect"
    PING = "ping"
    EXTERNAL = "external"
    EXTERNAL_PERL = "external-perl"
    ON = "on"
    OFF = "off"

    @property
    def runs(self) -> bool:
        """False for `on` (always up) and `off` (never checked): nothing is ever sent for them."""
        return self not in _NEVER_RUN


_NEVER_RUN = frozenset({CheckType.ON, CheckType.OFF})


class State(enum.StrEnum):
    """The health of a check identity (and of every real that uses it)."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"  # no verdict yet (or `checktype=off`): never given traffic


def host(address: str) -> str:
    """An address as it stands before `:port`: IPv6 in brackets, anything else as it is."""
    return f"[{address}]" if ":" in address else address


def host_port(address: str, port: int | str) -> str:
    """`10.0.0.2:80`, `[2001:db8::2]:80`: the one spelling of an address and a port in healthd."""
    return f"{host(address)}:{port}"
