"""`healthd check-install`: can healthd.service's sandbox see the interpreter and code this healthd runs on?

The unit hides /root, /home and /run/user (ProtectHome=yes) and gives healthd an empty /tmp and
/var/tmp (PrivateTmp=yes). A venv made there, or from a Python that lives there (pyenv under
/root), makes `systemctl start healthd` fail with "status=203/EXEC" and nothing in healthd's own
words. The unit runs this check first, outside the sandbox (ExecStartPre=+), so the journal and
`systemctl status` say what is wrong and how to fix it; an operator can run it by hand too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import healthd

# folder -> the unit setting that hides it from healthd
HIDDEN = {
    "/root": "ProtectHome=yes",
    "/home": "ProtectHome=yes",
    "/run/user": "ProtectHome=yes",
    "/tmp": "PrivateTmp=yes",
    "/var/tmp": "PrivateTmp=yes",
}

USAGE = "usage: healthd check-install [--quiet]\n"


def hidden_by(path: str) -> tuple[str, str] | None:
    """(folder, unit setting) when `path` lies in a folder the unit hides."""
    for folder, setting in HIDDEN.items():
        if path == folder or path.startswith(folder + "/"):
            return folder, setting
    return None


def what_runs(argv0: str | None = None) -> list[tuple[str, str]]:
    """(what, path) for every file the unit must be able to reach, links followed and not."""
    script = argv0 if argv0 is not None else sys.argv[0]
    found = [
        ("the healthd command", os.path.abspath(script)) if script and os.path.sep in script else None,
        ("its Python interpreter", sys.executable),
        ("its Python interpreter", os.path.realpath(sys.executable)),
        ("its Python installation", os.path.realpath(sys.base_prefix)),
        ("its venv", os.path.realpath(sys.prefix)),
        ("healthd's code", str(Path(healthd.__file__).resolve().parent)),
    ]
    if found[0] is not None:
        found.append(("the healthd command", os.path.realpath(found[0][1])))
    out: list[tuple[str, str]] = []
    for item in found:
        if item is not None and item not in out:
            out.append(item)
    return out


def problems(items: list[tuple[str, str]]) -> list[str]:
    lines = []
    for what, path in items:
        hit = hidden_by(path)
        if hit:
            folder, setting = hit
            lines.append(f"{what} {path} is under {folder}, which healthd.service hides ({setting})")
    return lines


def main(argv: list[str]) -> int:
    if argv not in ([], ["--quiet"], ["-q"]):
        print(USAGE, end="", file=sys.stderr)
        return 2
    found = problems(what_runs())
    if found:
        for line in found:
            print(f"healthd: {line}", file=sys.stderr)
        print("healthd: under systemd it would fail with status=203/EXEC. Install the Debian package, "
              "or make the venv from /usr/bin/python3 in a folder outside /root, /home and /tmp "
              "(/usr/bin/python3 -m venv /opt/healthd); see the README's install section.", file=sys.stderr)
        return 1
    if not argv:
        print(f"healthd check-install: OK: {sys.executable} (healthd {healthd.__version__} in "
              f"{Path(healthd.__file__).resolve().parent}) is visible inside healthd.service's sandbox")
    return 0
