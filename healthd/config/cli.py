"""`healthd check-config [--json] [FILE]`: validate a config and show what healthd will do with it.

Exit status: 0 valid, 1 invalid or not found (or its logfile cannot be opened, which stops
ldirectord), 2 bad command line. Never a traceback.
"""

from __future__ import annotations

import sys

from healthd.config import find_config, load
from healthd.config.model import ConfigError
from healthd.config.render import to_json, to_text
from healthd.config.values import LDIRECTORD_WOULD_NOT_START

USAGE = """usage: healthd check-config [--json] [FILE]

Read FILE (default ldirectord.cf, looked up in /etc/ha.d, /etc/ha.d/conf, then
as a path) and print its virtual services, real servers and resolved checks.
  --json   print one JSON object instead of the summary
Exit status: 0 valid, 1 invalid (or a logfile ldirectord could not open), 2 usage error."""


def main(argv: list[str]) -> int:
    as_json = False
    names: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--json":
            as_json = True
        elif arg in ("-h", "--help"):
            print(USAGE)
            return 0
        elif arg == "--":
            names += args
            break
        elif arg.startswith("-") and arg != "-":
            print(f"healthd check-config: unknown option {arg}\n{USAGE}", file=sys.stderr)
            return 2
        else:
            names.append(arg)
    if len(names) > 1:
        print(f"healthd check-config: one FILE at most\n{USAGE}", file=sys.stderr)
        return 2
    try:
        config = load(find_config(names[0] if names else None))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        count = len(exc.issues)
        print(f"healthd check-config: {count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return 1
    print(to_json(config) if as_json else to_text(config))
    # healthd runs such a file, but ldirectord does not: be at least as loud as it is.
    refused = [w for w in config.warnings if LDIRECTORD_WOULD_NOT_START in w.message]
    for issue in refused:
        print(issue, file=sys.stderr)
    if refused:
        print("healthd check-config: ldirectord would refuse to start with this file", file=sys.stderr)
        return 1
    return 0
