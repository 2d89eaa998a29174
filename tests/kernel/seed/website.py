"""A real server's small web site: serves one folder over plain HTTP on several ports.

Run inside a real server's network namespace:
    python website.py ROOT PORT [PORT...]
It binds every port on all addresses (a DR real must answer on the VIP held by
its `lo`), prints one line "ready" once every socket listens, and serves until
killed. Kept dependency-free and tiny because it starts under QEMU's TCG, where
every import costs.
"""

from __future__ import annotations

import functools
import http.server
import sys
import threading


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # the experiments count requests on the client side; a log here only costs time


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: website.py ROOT PORT [PORT...]", file=sys.stderr)
        return 2
    root, ports = argv[0], [int(p) for p in argv[1:]]
    handler = functools.partial(_QuietHandler, directory=root)
    servers = [http.server.ThreadingHTTPServer(("0.0.0.0", port), handler) for port in ports]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    servers[0].serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
