"""Run one benchmark: python -m bench NAME [ARGS...]."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "checks": "bench.checks",
    "config": "bench.config",
    "engine": "bench.engine",
    "hotpath": "bench.hotpath",
    "ipvs": "bench.ipvs",
    "kstart": "bench.ipvs",
    "outputs": "bench.outputs",
    "reconcile": "bench.reconcile",
    "reload": "bench.reload",
    "tls": "bench.tls",
    "web": "bench.web",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m bench {{{'|'.join(sorted(BENCHMARKS))}}} [ARGS...]", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
