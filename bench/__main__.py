"""Dispatcher: `python -m bench NAME [ARGS...]` runs bench/NAME.py's main(ARGS)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)])
                  if not m.name.startswith("_") and hasattr(_load(m.name), "main"))


def _load(name: str) -> object:
    return importlib.import_module(f"bench.{name}")


def main(argv: list[str]) -> int:
    names = _available()
    if not argv or argv[0] not in names:
        print(f"usage: python -m bench NAME [ARGS...]; NAME is one of: {', '.join(names)}", file=sys.stderr)
        return 2
    return int(_load(argv[0]).main(argv[1:]) or 0)  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
