"""The parsed ldirectord.cf: an immutable, typed model with every default already resolved.

Later layers never re-derive a default: each Real carries its complete CheckSpec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from healthd.checks.spec import CheckSpec
from healthd.vocab import CheckType, Forward, ServiceProtocol, host_port


@dataclass(frozen=True, slots=True)
class Real:
    """A `real=`/`real6=` line (one per address after range expansion)."""

    address: str  # canonical IP text, no brackets
    port: int  # 0 for fwmark virtuals without a port
    forward: Forward
    weight: int  # 0 allowed
    check: CheckSpec
    upper: int = 0  # u:N connection threshold, 0 = none
    lower: int = 0  # l:N connection threshold, 0 = none
    line: int = 0  # source line, for messages

    @property
    def label(self) -> str:
        """`10.0.0.2:80` / `[2001:db8::2]:80`, as logs and `journalctl REAL=` use it."""
        return host_port(self.address, self.port)


@dataclass(frozen=True, slots=True)
class Fallback:
    """`fallback=`/`fallback6=`: the server added when no real of a virtual is up."""

    address: str
    port: int
    forward: Forward = Forward.GATE  # ldirectord's default forwarding for a fallback
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Virtual:
    """A `virtual=`/`virtual6=` section."""

    family: int  # 4 or 6
    protocol: ServiceProtocol  # TCP, UDP or FWM
    address: str | None  # None for fwmark
    port: int  # 0 for fwmark
    fwmark: int | None
    scheduler: str = "wrr"
    persistent: int | None = None  # seconds
    netmask: str | None = None  # as written: dotted IPv4 mask, or an IPv6 prefix length
    schedflags: tuple[str, ...] = ()  # as written, e.g. ("flag-1",) or ("sh-fallback",)
    ops: bool = False
    reals: tuple[Real, ...] = ()
    # Effective values: the section's own, else the global one (fallback: its port
    # defaults to the virtual's), so that later layers never look at GlobalSettings.
    fallback: Fallback | None = None
    fallbackcommand: str | None = None
    notifycommand: str | None = None  # healthd extension: run on every real's state change
    quiescent: bool = False
    cleanstop: bool = True
    service: str = "none"  # resolved service (given, or by port); in each CheckSpec when it negotiates
    checktype: CheckType = CheckType.NEGOTIATE  # as resolved, for summaries
    connect_every: int = 0  # numeric checktype N: N connect checks between two negotiates
    servicename: str | None = None
    comment: str | None = None
    monitorfile: str | None = None
    emailalert: str | None = None
    emailalertfreq: int = 0
    emailalertstatus: tuple[str, ...] = ("all",)
    smtp: str | None = None
    # healthd extensions (healthd.engine.safety), 0 = off: seconds of weight ramp for a real that
    # comes back, seconds a leaving real may drain, fraction of reals that failed checks cannot
    # take below
    slowstart: float = 0.0
    drain: float = 0.0
    depoolthreshold: float = 0.0
    announce: bool = False  # healthd extension: announce the address while the service can serve
    line: int = 0

    @property
    def checktype_text(self) -> str:
        """The checktype as ldirectord.cf spells it: `negotiate`, `external-perl`, or N for a numeric one."""
        return str(self.connect_every) if self.connect_every else self.checktype.value

    @property
    def label(self) -> str:
        """`172.17.111.111:80`, `[2001:db8::5]:119` or `fwmark 99`."""
        if self.fwmark is not None:
            return f"fwmark {self.fwmark}"
        return host_port(self.address or "", self.port)


@dataclass(frozen=True, slots=True)
class GlobalSettings:
    """Directives outside any virtual section, with ldirectord's defaults."""

    checktimeout: float | None = None  # as written; the resolved values live in each CheckSpec
    negotiatetimeout: float | None = None
    checkinterval: float = 10.0
    checkcount: int = 1
    failurecount: int = 1
    fallback: Fallback | None = None
    fallback6: Fallback | None = None
    fallbackcommand: str | None = None
    notifycommand: str | None = None  # healthd extension, off unless set
    autoreload: bool = False
    callback: str | None = None
    logfile: str = "/var/log/ldirectord.log"
    execute: tuple[str, ...] = ()
    fork: bool = False
    supervised: bool = False
    quiescent: bool = False
    readdquiescent: bool = False
    emailalert: str | None = None
    emailalertfreq: int = 0
    emailalertstatus: tuple[str, ...] = ("all",)
    emailalertfrom: str | None = None
    cleanstop: bool = True
    smtp: str | None = None
    maintenancedir: str | None = None
    # healthd extensions, as written globally (0 = off); the effective values are in each
    # Virtual (slowstart, drain, depoolthreshold) and CheckSpec (successcount, fastinterval, agentport)
    successcount: int = 1
    fastinterval: float = 0.0
    slowstart: float = 0.0
    drain: float = 0.0
    depoolthreshold: float = 0.0
    agentport: int = 0
    announce: bool = False  # healthd extension, the default of each virtual's announce=


@dataclass(frozen=True, slots=True)
class Config:
    path: str  # the file actually read
    settings: GlobalSettings = field(default_factory=GlobalSettings)
    virtuals: tuple[Virtual, ...] = ()
    warnings: tuple[ConfigIssue, ...] = ()  # things that work but deserve a look, in line order


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in a file: printed as `FILE:LINE: message`."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        if self.line <= 0:  # about the file as a whole (not found, unreadable)
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class ConfigError(Exception):
    """The file is invalid; `issues` lists every problem found, in line order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues
