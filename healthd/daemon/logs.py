"""Where healthd's log lines go: journald with structured fields, stderr with -d, or ldirectord's `logfile`.

log_event() is the one place an engine or daemon event becomes a log line and its
journald fields. Every state change is one record with the fields VIRTUAL=, REAL=,
CHECK= and STATE=up|down plus a sentence a human reads, so that
`journalctl -u healthd REAL=10.0.0.2:80` shows one real server's history.
Secrets from the config (passwd=, secret=) are masked in every record before
any handler sees it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from healthd.config.model import Config
from healthd.engine import events
from healthd.ipvs.model import describe_op
from healthd.vocab import State

LOGGER = "healthd"
DEFAULT_LOGFILE = "/var/log/ldirectord.log"  # ldirectord's default, kept for drop-in compatibility
JOURNAL_SOCKET = "/run/systemd/journal/socket"
MASK = "********"

# ldirectord accepts a syslog facility name in place of a path.
SYSLOG_FACILITIES = {
    name: code
    for name, code in logging.handlers.SysLogHandler.facility_names.items()
    if name not in ("security",)  # deprecated alias of auth
}

log = logging.getLogger(LOGGER)


class SecretMask(logging.Filter):
    """Replaces every configured secret by a mask, in the message and in its structured fields."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()

    def update(self, secrets: Iterable[str]) -> None:
        # Longest first, so that a secret containing another is masked whole.
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        # Freeze the message: handlers (JournalHandler adds CODE_ARGS) never see the raw args.
        record.msg = self.mask(record.getMessage())
        record.args = None
        if self.secrets:
            for key, value in list(record.__dict__.items()):
                if key.isupper() and isinstance(value, str):
                    setattr(record, key, self.mask(value))
        return True


MASKER = SecretMask()


def config_secrets(config: Config) -> list[str]:
    """Every password and shared secret in a configuration."""
    secrets: list[str] = []
    for virtual in config.virtuals:
        for real in virtual.reals:
            secrets += [real.check.passwd, real.check.secret]
    return [s for s in secrets if s]


@dataclass(frozen=True)
class LogTarget:
    """Where logs go, decided once from the command line, the environment and the config."""

    stderr: bool = False
    journal: bool = False
    logfile: str | None = None  # a path or a syslog facility name


def under_journald(environ: Mapping[str, str] | None = None, stderr_fd: int = 2) -> bool:
    """True when systemd connected our stderr to the journal and journald's socket exists.

    JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd set up; it must match our
    stderr, because a shell started from a service inherits the variable but not the stream.
    """
    env = os.environ if environ is None else environ
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()) or not os.path.exists(JOURNAL_SOCKET):
        return False
    try:
        st = os.fstat(stderr_fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def choose_target(debug: bool, logfile: str | None, journal: bool) -> LogTarget:
    """-d adds stderr; under systemd the journal replaces ldirectord's default logfile.

    A logfile set explicitly to something else than ldirectord's default is
    still honoured under systemd, so an operator's syslog facility keeps working.
    Under systemd stderr already goes to the journal, so -d adds nothing there
    but verbosity (no line twice).
    """
    if journal:
        extra = logfile if logfile and logfile != DEFAULT_LOGFILE else None
        return LogTarget(journal=True, logfile=extra)
    if debug:
        return LogTarget(stderr=True)
    return LogTarget(logfile=logfile or DEFAULT_LOGFILE)


class _Formatter(logging.Formatter):
    def __init__(self, with_time: bool) -> None:
        fmt = "%(asctime)s healthd[%(process)d]: %(message)s" if with_time else "healthd: %(message)s"
        super().__init__(fmt, datefmt="%Y-%m-%d %H:%M:%S")


def _logfile_handler(logfile: str) -> logging.Handler:
    if logfile in SYSLOG_FACILITIES:
        address = "/dev/log" if os.path.exists("/dev/log") else ("localhost", 514)
        handler: logging.Handler = logging.handlers.SysLogHandler(
            address=address, facility=SYSLOG_FACILITIES[logfile]
        )
        handler.setFormatter(logging.Formatter("healthd[%(process)d]: %(message)s"))
        return handler
    # WatchedFileHandler reopens the file after logrotate moved it away.
    handler = logging.handlers.WatchedFileHandler(logfile)
    handler.setFormatter(_Formatter(with_time=True))
    return handler


def configure(target: LogTarget, verbose: bool = False) -> list[str]:
    """Install the handlers for `target` on the healthd logger; returns problems to report."""
    problems: list[str] = []
    root = logging.getLogger(LOGGER)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    handlers: list[logging.Handler] = []
    if target.stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(_Formatter(with_time=True))
        handlers.append(stream)
    if target.journal:
        from systemd.journal import JournalHandler

        handlers.append(JournalHandler(SYSLOG_IDENTIFIER="healthd"))
    if target.logfile:
        try:
            handlers.append(_logfile_handler(target.logfile))
        except OSError as exc:
            problems.append(f"cannot open logfile {target.logfile}: {exc.strerror or exc}")
    if not handlers:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.addFilter(MASKER)
        root.addHandler(handler)
    return problems


def state_change(virtual: str, real: str, check: str, up: bool, detail: str, first: bool = False) -> None:
    """Log one real server going up or down, with the fields journalctl filters on."""
    state = "up" if up else "down"
    verbs = {(True, True): "is up", (True, False): "is down", (False, True): "is up again",
             (False, False): "went down"}
    verb = verbs[first, up]
    log.info(
        "real server %s of virtual service %s %s (%s check: %s)",
        real, virtual, verb, check, detail,
        extra={"VIRTUAL": virtual, "REAL": real, "CHECK": check, "STATE": state},
    )


def log_event(event: events.Event) -> None:
    """Log one event with its journald fields; events that are no news for an operator log nothing."""
    match event:
        case events.RealChanged(virtual=virtual, real=real, check=check, old=old, new=new, outcome=outcome):
            if new is State.UNKNOWN:
                return  # not a verdict: nothing for an operator to act on
            detail = outcome.detail if outcome is not None else "no check result"
            state_change(virtual.label, real.label, events.describe_check(check), new is State.UP, detail,
                         first=old is State.UNKNOWN)
        case events.MaintenanceChanged(virtual=virtual, real=real, in_maintenance=on):
            log.info(
                "real server %s of virtual service %s %s maintenance",
                real.label, virtual.label, "entered" if on else "left",
                extra={"VIRTUAL": virtual.label, "REAL": real.label, "MAINTENANCE": "yes" if on else "no"},
            )
        case events.FallbackChanged(virtual=virtual, active=True):
            log.warning("no real server of %s is up: the fallback server takes the traffic",
                        virtual.label, extra={"VIRTUAL": virtual.label, "FALLBACK": "on"})
        case events.FallbackChanged(virtual=virtual, active=False):
            log.info("a real server of %s is up again: the fallback server is withdrawn",
                     virtual.label, extra={"VIRTUAL": virtual.label, "FALLBACK": "off"})
        case events.CommandFinished(virtual=virtual, argv=argv, returncode=code, error=error):
            if error or code not in (0, None):
                log.warning("fallbackcommand %s for %s failed: %s", " ".join(argv), virtual.label,
                            error or f"exit status {code}", extra={"VIRTUAL": virtual.label})
            else:
                log.info("fallbackcommand %s for %s done", " ".join(argv), virtual.label,
                         extra={"VIRTUAL": virtual.label})
        case events.SyncFailed(error=error):
            log.error("cannot update the IPVS table (will retry): %s", error)
        case events.ReloadDone(ok=ok, issues=issues, outcome=outcome):
            for issue in issues:
                log.error("reload: %s", issue)
            log.log(logging.INFO if ok else logging.ERROR, "%s", outcome)
        case events.OperationRefused(operation=operation, error=error):
            log.debug("IPVS refused: %s: %s", describe_op(operation), error)  # the reconciler warns already
        case events.Notice(message=message):
            log.warning("%s", message)
        case events.TableApplied() | events.CheckDone():
            pass  # routine: metrics and monitorfile observe these, the journal does not
