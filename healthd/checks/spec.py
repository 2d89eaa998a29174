"""What a check needs to run, and what it reports: the vocabulary shared by config, checks and engine.

The config layer resolves every default into a CheckSpec, so a check never looks
anything up; the engine schedules one task per distinct CheckSpec (its identity)
and feeds the Outcome to the health state of every real that shares it.
Nothing here knows about IPVS or about ldirectord.cf syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter

from healthd.checks.services import KNOWN_SERVICES as KNOWN_SERVICES  # the config parser's import
from healthd.checks.tls import TlsPolicy
from healthd.vocab import CheckType as CheckType  # where the checks import it from
from healthd.vocab import ServiceProtocol, host_port


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One fully resolved check. Equal specs are the same check identity and run once.

    `address`/`port` are where the check connects (the real's address and its
    checkport, or the host and port of a per-real `http://host:port/path` URL).
    Secrets are excluded from repr so that logging a spec cannot leak them.
    """

    type: CheckType
    service: str  # one of KNOWN_SERVICES; "none" when the type is not negotiate
    # the transport: the virtual's protocol; for a firewall mark TCP, or UDP for dns and sip
    # (healthd.config.defaults.check_protocol), so that it does not split identical checks
    protocol: ServiceProtocol
    family: int  # 4 or 6
    address: str  # canonical IP text, no brackets
    port: int  # check port; 0 only for checks that need none (ping, on, off)
    request: str = "/"  # http: path (+query) beginning with "/"; other services: as written
    receive: str = ""  # the Perl regex as written in the config ("" = anything)
    receive_re: str | None = None  # receive translated to Python `re` syntax; None = anything
    scheme: str = ""  # "http" or "https" for web checks, "" otherwise
    virtualhost: str | None = None  # Host header / SNI / SMTP EHLO name
    httpmethod: str = "GET"  # GET or HEAD
    checktimeout: float = 5.0
    negotiatetimeout: float = 30.0
    checkinterval: float = 10.0
    failurecount: int = 1
    # healthd extensions (off by default): consecutive passes before a down real is up again;
    # the interval while a verdict is pending (0 = checkinterval); the real's agent port (0 = none)
    successcount: int = 1
    fastinterval: float = 0.0
    agentport: int = 0
    checkcount: int = 1  # ping attempts
    connect_every: int = 0  # numeric checktype N: N connect checks between two negotiates
    login: str = ""
    passwd: str = field(default="", repr=False)
    database: str = ""
    secret: str = field(default="", repr=False)
    command: str = ""  # checkcommand for external / external-perl
    # external checks only: the four arguments ldirectord passes, already formatted:
    # (VIP or fwmark, VPORT, RIP, RPORT); IPv6 addresses in brackets. Empty otherwise,
    # so that identical non-external checks on different virtuals share one identity.
    command_args: tuple[str, ...] = ()
    # TLS services (https, pops, imaps, ldaps): what to verify, resolved from the tls* directives
    # (healthd.checks.tls); None for the others, and for a spec built without the config layer.
    tls: TlsPolicy | None = None
    # The hash of every field above, worked out once: the engine looks each identity up in its
    # dicts on every verdict, and hashing 27 fields each time costs more than the lookup.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(_identity(self)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[CheckSpec], tuple[object, ...]]:
        """Copies and pickles are built anew, so that one made in another process hashes there."""
        return CheckSpec, _init_values(self)

    @property
    def deadline(self) -> float:
        """Seconds one run may take: negotiatetimeout for negotiate, checktimeout otherwise."""
        if self.type is CheckType.NEGOTIATE:
            return self.negotiatetimeout
        return self.checktimeout

    @property
    def target(self) -> str:
        """`address:port` as people write it (IPv6 in brackets), for logs and errors."""
        return host_port(self.address, self.port)


_identity = attrgetter(*(f.name for f in fields(CheckSpec) if f.compare))  # what __eq__ compares
_init_values = attrgetter(*(f.name for f in fields(CheckSpec) if f.init))  # __init__'s arguments, in order


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one check run.

    `detail` is one short human sentence ("HTTP 200, body matched", "connection
    refused", "timed out after 3.0 s"); it never contains secrets.
    """

    ok: bool
    detail: str
    latency: float  # seconds from start to verdict
