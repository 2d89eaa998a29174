"""The `healthd` command line: ldirectord's verbs and options, plus `status --json`, `check-config`, `demo`.

    healthd [-d|--debug] [--ipvs netlink|memory] [--http ADDR:PORT] [--] [CONFIG] VERB
        VERB: start|stop|restart|try-restart|reload|force-reload|status
    healthd status [--json] [CONFIG]
    healthd check-config [--json] [FILE]
    healthd check-install [--quiet]
    healthd demo
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from healthd import __version__

VERBS = ("start", "stop", "restart", "try-restart", "reload", "force-reload", "status")
DEFAULT_CONFIG = "ldirectord.cf"
STOP_WAIT = 15.0  # seconds `stop` waits for the daemon to exit
EXIT_CONFIG = 2  # an invalid config at start, as ldirectord
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 7  # LSB: reload of a stopped service
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command killed by SIGPIPE

USAGE = """\
usage: healthd [-d|--debug] [--ipvs netlink|memory] [--http ADDR:PORT] [--] [CONFIG] VERB
       (VERB: start|stop|restart|try-restart|reload|force-reload|status)
       healthd status [--json] [CONFIG]
       healthd check-config [--json] [FILE]
       healthd check-install [--quiet]
       healthd demo
       healthd -h|--help | -v|--version

CONFIG is looked up as /etc/ha.d/CONFIG, /etc/ha.d/conf/CONFIG, then as a path
(default: ldirectord.cf).

  -d, --debug      stay in the foreground and log to stderr, verbosely
  --ipvs KIND      the IPVS table to drive: netlink (the kernel's, the default) or
                   memory (an in-memory table, for trying healthd out without root)
  --http ADDR:PORT serve a read-only status page, /status.json and Prometheus
                   /metrics there (off unless given; 127.0.0.1:9180 keeps it local)
  --json           with status: print the live state of the running daemon as JSON
  check-install    can healthd.service's sandbox reach this healthd (not under /root,
                   /home or /tmp)? exits 1 with the fix when it cannot
  -h, --help       this help
  -v, --version    print the version

start, stop, restart, try-restart, reload, force-reload and status behave as
ldirectord's: reload sends SIGHUP, stop sends SIGTERM; status exits 0 when
running, 1 when the pidfile is stale, 3 when stopped.
"""


class UsageError(Exception):
    pass


@dataclass
class Args:
    verb: str
    config: str = DEFAULT_CONFIG
    debug: bool = False
    ipvs: str = "netlink"
    json: bool = False
    http: tuple[str, int] | None = None


def parse(argv: list[str]) -> Args:
    debug = False
    as_json = False
    ipvs: str | None = None
    http: tuple[str, int] | None = None
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positionals += argv[i + 1:]
            break
        if arg in ("-d", "--debug"):
            debug = True
        elif arg == "--json":
            as_json = True
        elif arg == "--ipvs" or arg.startswith("--ipvs="):
            if "=" in arg:
                ipvs = arg.split("=", 1)[1]
            else:
                i += 1
                if i == len(argv):
                    raise UsageError("--ipvs needs a value: netlink or memory")
                ipvs = argv[i]
            if ipvs not in ("netlink", "memory"):
                raise UsageError(f"--ipvs {ipvs!r}: use netlink (the kernel's table) or memory")
        elif arg == "--http" or arg.startswith("--http="):
            if "=" in arg:
                value = arg.split("=", 1)[1]
            else:
                i += 1
                if i == len(argv):
                    raise UsageError("--http needs ADDRESS:PORT, such as 127.0.0.1:9180")
                value = argv[i]
            from healthd.web.server import ListenError, parse_listen

            try:
                http = parse_listen(value)
            except ListenError as exc:
                raise UsageError(str(exc)) from None
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"unknown option {arg}")
        else:
            positionals.append(arg)
        i += 1
    if not positionals:
        raise UsageError("no command given")
    if len(positionals) == 1 and positionals[0] in VERBS:
        verb, config = positionals[0], DEFAULT_CONFIG
    elif len(positionals) == 2 and positionals[1] in VERBS:
        config, verb = positionals
    elif len(positionals) == 2 and positionals[0] == "status":  # healthd status [--json] CONFIG
        verb, config = positionals
    else:
        raise UsageError(f"expected [CONFIG] {'|'.join(VERBS)}, got: {' '.join(positionals)}")
    if as_json and verb != "status":
        raise UsageError("--json goes with status")
    if ipvs is not None and verb not in ("start", "restart", "try-restart"):
        raise UsageError(f"--ipvs goes with start, restart or try-restart, not {verb}")
    if http is not None and verb not in ("start", "restart", "try-restart"):
        raise UsageError(f"--http goes with start, restart or try-restart, not {verb}")
    return Args(verb=verb, config=config, debug=debug, ipvs=ipvs or "netlink", json=as_json, http=http)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except BrokenPipeError:
        # The reader went away (`healthd check-config | head`): stop quietly, as cat does. Point
        # stdout at /dev/null so the interpreter's final flush cannot raise the same error again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(args: list[str]) -> int:
    if args[:1] == ["check-config"]:
        from healthd.config.cli import main as check_config

        return check_config(args[1:])
    if args[:1] == ["check-install"]:
        from healthd.install_check import main as check_install

        return check_install(args[1:])
    if args[:1] == ["demo"]:
        from healthd.demo import main as demo

        return demo(args[1:])
    if any(a in ("-h", "--help") for a in args[: args.index("--") if "--" in args else len(args)]):
        print(USAGE, end="")
        return 0
    if any(a in ("-v", "--version") for a in args[: args.index("--") if "--" in args else len(args)]):
        print(f"healthd {__version__}")
        return 0
    try:
        parsed = parse(args)
    except UsageError as exc:
        print(f"healthd: {exc}\n", file=sys.stderr)
        print(USAGE, end="", file=sys.stderr)
        return EXIT_USAGE
    try:
        return VERB_HANDLERS[parsed.verb](parsed)
    except KeyboardInterrupt:
        return 130


# --- verbs --------------------------------------------------------------------------------


def _find(name: str) -> str:
    """The config path by ldirectord's lookup; the literal name when none is found (the loader says why)."""
    from healthd.config import ConfigError, find_config

    try:
        return str(find_config(name))
    except ConfigError:
        return name


def cmd_start(args: Args) -> int:
    from healthd.daemon.run import start

    return start(_find(args.config), debug=args.debug, ipvs=args.ipvs, http=args.http)


def cmd_stop(args: Args) -> int:
    from healthd.daemon import pidfile

    path = _find(args.config)
    state, pid = pidfile.status(pidfile.pidfile_path(path))
    if state is not pidfile.Status.RUNNING or pid is None:
        if state is pidfile.Status.STALE:
            pidfile.release(pidfile.pidfile_path(path), pid or 0)
        print(f"healthd for {path} is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while pidfile.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pidfile.alive(pid):
        print(f"healthd: pid {pid} did not stop within {STOP_WAIT:.0f} s", file=sys.stderr)
        return 1
    print(f"healthd for {path} stopped (pid {pid})")
    return 0


def cmd_restart(args: Args) -> int:
    rc = cmd_stop(args)
    return rc if rc else cmd_start(args)


def cmd_try_restart(args: Args) -> int:
    from healthd.daemon import pidfile

    state, _pid = pidfile.status(pidfile.pidfile_path(_find(args.config)))
    if state is not pidfile.Status.RUNNING:
        print("healthd is not running; nothing to restart")
        return 0
    return cmd_restart(args)


def cmd_reload(args: Args) -> int:
    from healthd.daemon import pidfile

    path = _find(args.config)
    state, pid = pidfile.status(pidfile.pidfile_path(path))
    if state is not pidfile.Status.RUNNING or pid is None:
        print(f"healthd for {path} is not running", file=sys.stderr)
        return EXIT_NOT_RUNNING
    os.kill(pid, signal.SIGHUP)
    print(f"healthd for {path} (pid {pid}) asked to reload")
    return 0


def cmd_status(args: Args) -> int:
    from healthd.daemon import control, pidfile

    path = _find(args.config)
    state, pid = pidfile.status(pidfile.pidfile_path(path))
    live: dict[str, Any] | None = None
    problem = ""
    if state is pidfile.Status.RUNNING:
        try:
            live = control.query(pidfile.socket_path(path))
        except control.ControlUnavailable as exc:
            problem = str(exc)
    if args.json:
        if live is None:
            words = {pidfile.Status.STALE: "stale pidfile", pidfile.Status.STOPPED: "stopped"}
            print(f"healthd: {problem or words.get(state, 'no live state')}", file=sys.stderr)
            return int(state) if state is not pidfile.Status.RUNNING else 4
        print(json.dumps(live, indent=2))
        return 0
    if state is pidfile.Status.RUNNING:
        print(f"healthd for {path} is running with pid: {pid}")
        if live is not None:
            print(format_status(live))
            _children_status(live.get("execute", []), {os.path.realpath(path)})
        elif problem:
            print(f"(no live state: {problem})")
    elif state is pidfile.Status.STALE:
        print(f"healthd for {path} is stopped, but its pidfile remains (stale pid {pid})")
        # ldirectord's own words, which the ocf:heartbeat:ldirectord agent looks for: with them a
        # crashed healthd is "not running" (restartable), without them a cluster error.
        print(f"ldirectord stale pid file {pidfile.pidfile_path(path)} for {path}", file=sys.stderr)
    else:
        print(f"healthd for {path} is stopped")
    return int(state)


def _children_status(names: list[str], seen: set[str]) -> None:
    """The `execute=` instances' status after their parent's, as ldirectord (exit code: the parent's)."""
    from healthd.daemon import control, pidfile

    for name in names:
        path = _find(name)
        if os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        state, pid = pidfile.status(pidfile.pidfile_path(path))
        if state is not pidfile.Status.RUNNING:
            words = "stale pidfile" if state is pidfile.Status.STALE else "stopped"
            print(f"healthd for {path} (execute={name}) is {words}")
            continue
        print(f"healthd for {path} (execute={name}) is running with pid: {pid}")
        try:
            live = control.query(pidfile.socket_path(path))
        except control.ControlUnavailable as exc:
            print(f"(no live state: {exc})")
            continue
        print(format_status(live))
        _children_status(live.get("execute", []), seen)


def format_status(live: dict[str, Any]) -> str:
    """The live state as a table a person reads."""
    lines = [f"{live.get('summary', '')} (IPVS table: {live.get('ipvs', '?')})"]
    for err in live.get("reload_errors", []):
        lines.append(f"  last reload failed: {err}")
    if live.get("last_sync_error"):
        lines.append(f"  IPVS table update failing: {live['last_sync_error']}")
    for refused in live.get("refused", []):
        lines.append(f"  IPVS {refused} (the rest of the table is applied; tried again with back-off)")
    for virtual in live.get("virtuals", []):
        extra = "  (fallback server active)" if virtual.get("fallback_active") else ""
        lines.append(f"  {virtual.get('service') or virtual.get('virtual', '?')}{extra}")
        for real in virtual.get("reals", []):
            weight = real.get("weight")
            table = f"weight {weight}" if weight is not None else "not in table"
            since = real.get("since")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "?"
            latency = real.get("last_latency")
            took = f" ({latency * 1000:.1f} ms)" if isinstance(latency, (int, float)) else ""
            last = real.get("last_detail") or "not checked yet"
            maint = ", maintenance" if real.get("maintenance") else ""
            if real.get("refused"):
                table = "refused"
            lines.append(
                f"    {real.get('real', '?'):<22} {real.get('state', '?'):<7} {table:<12} since {when}, "
                f"{real.get('consecutive_failures', 0)} failures{maint}; last check: {last}{took}"
                f"{_safety_notes(real)}"
            )
        for label in virtual.get("draining_removed", []):
            lines.append(f"    {label:<22} removed by reload, draining at weight 0")
        if virtual.get("held_by_depoolthreshold"):
            lines.append(f"    depoolthreshold holds {virtual['held_by_depoolthreshold']} failing real(s) in "
                         f"(at least {virtual.get('serving_needed')} must serve)")
    return "\n".join(lines)


def _safety_notes(real: dict[str, Any]) -> str:
    """What the healthd extensions do to this real right now, if anything."""
    notes = []
    if real.get("held_by_depoolthreshold"):
        notes.append("HELD IN by depoolthreshold although its check fails")
    if real.get("draining"):
        notes.append("draining")
    if real.get("ramping_to") is not None:
        notes.append(f"slowstart ramp to weight {real['ramping_to']}")
    if real.get("agent"):
        notes.append(f"agent says {real['agent']}")
    return "; " + "; ".join(notes) if notes else ""


VERB_HANDLERS = {
    "start": cmd_start,
    "stop": cmd_stop,
    "restart": cmd_restart,
    "try-restart": cmd_try_restart,
    "reload": cmd_reload,
    "force-reload": cmd_reload,
    "status": cmd_status,
}
