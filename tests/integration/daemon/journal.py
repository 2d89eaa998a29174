"""A real systemd-journald in a private mount namespace, so tests never touch the host's journal.

`private_journal(workload, queries)` runs the shell `workload` next to a fresh
journald (tmpfs over /run/systemd, /run/log and /var/log/journal, in a namespace
of its own), then answers each query with `journalctl -o json MATCH...`.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

JOURNALD = Path("/lib/systemd/systemd-journald")
MARK = "=== query "


def available() -> bool:
    tools = ("unshare", "journalctl")
    return JOURNALD.exists() and all(shutil.which(tool) is not None for tool in tools)


Entries = list[dict[str, str]]


def private_journal(workload: str, queries: list[list[str]], timeout: float = 60.0) -> list[Entries]:
    lines = [
        "set -e",
        "mkdir -p /run/systemd /run/log",
        "mount -t tmpfs tmpfs /run/systemd",
        "mount -t tmpfs tmpfs /run/log",
        "if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi",
        f"{JOURNALD} & JOURNALD=$!",
        "trap 'kill $JOURNALD 2>/dev/null || true' EXIT",
        "for i in $(seq 200); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done",
        "[ -S /run/systemd/journal/socket ]",
        "set +e",
        f"( {workload} ) >&2",
        "set -e",
        "journalctl --sync",
    ]
    for n, match in enumerate(queries):
        args = " ".join(shlex.quote(m) for m in match)
        query = f"journalctl --directory=/run/log/journal -o json --no-pager {args} || true"
        lines += [f"echo '{MARK}{n}'", query]
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", "\n".join(lines)],
        capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"private journald failed ({result.returncode}): {result.stderr[-2000:]}")
    answers: list[Entries] = []
    for line in result.stdout.splitlines():
        if line.startswith(MARK):
            answers.append([])
        elif line.startswith("{") and answers:
            answers[-1].append(json.loads(line))
    assert len(answers) == len(queries), result.stdout[-2000:]
    return answers
