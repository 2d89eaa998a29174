"""The seed's own ldirectord.cf files, moved onto the lab's addresses and edited as an operator would.

The experiments run the configurations in ../shared/data/configs/seed-*.cf, not
copies: only the addresses change (the seed's LAN addresses become 10.99.x.y
inside the lab's namespaces) plus the few lines an experiment edits.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def shared_dir() -> Path:
    """The project's shared folder: $HEALTHD_SHARED, else the sibling `shared` of the repository.

    A git worktree's sibling is not the main checkout's, so the main checkout
    named by the worktree's `.git` file is tried as well.
    """
    candidates = []
    if os.environ.get("HEALTHD_SHARED"):
        candidates.append(Path(os.environ["HEALTHD_SHARED"]))
    candidates.append(REPO.parent / "shared")
    dotgit = REPO / ".git"
    if dotgit.is_file():  # "gitdir: /main/.git/worktrees/NAME"
        gitdir = Path(dotgit.read_text().partition(":")[2].strip())
        candidates.append(gitdir.parents[2].parent / "shared")
    for path in candidates:
        if (path / "data" / "configs").is_dir():
            return path
    raise FileNotFoundError(
        f"the shared folder is not beside the repository (tried {', '.join(map(str, candidates))})"
    )


def seed_config(name: str, addresses: dict[str, str]) -> str:
    """The text of ../shared/data/configs/NAME with each seed address replaced by the lab's."""
    text = (shared_dir() / "data" / "configs" / name).read_text()
    for seed_address, lab_address in addresses.items():
        text, count = re.subn(rf"(?<![\d.]){re.escape(seed_address)}(?![\d])", lab_address, text)
        if count == 0:
            raise ValueError(f"{name} does not mention {seed_address}")
    return text


def set_global(text: str, directive: str, value: str) -> str:
    """Set a global directive (before the first `virtual=`), replacing the line if it is there."""
    head, sep, tail = text.partition("\nvirtual")
    line = f"{directive}={value}"
    head, count = re.subn(rf"(?m)^{directive}=.*$", line, head)
    if count == 0:
        head = f"{head.rstrip()}\n{line}\n"
    return head + sep + tail


def add_real(text: str, line: str) -> str:
    """Append a `real=` line after the last one (the file has a single virtual section)."""
    lines = text.splitlines()
    last = max(i for i, current in enumerate(lines) if current.strip().startswith("real="))
    lines.insert(last + 1, f"\t{line}")
    return "\n".join(lines) + "\n"
