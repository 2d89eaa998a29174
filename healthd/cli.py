"""The `healthd` command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["-v"], ["--version"]):
        from healthd import __version__

        print(f"healthd {__version__}")
        return 0
    if args[:1] == ["check-config"]:
        from healthd.config.cli import main as check_config

        return check_config(args[1:])
    print("healthd: not implemented yet", file=sys.stderr)
    return 2
