"""A real server's small web site: serves one folder over plain HTTP on several ports.

Run inside a real server's network namespace:
    python website.py ROOT LOG PORT [PORT...]
It appends the path of every request to LOG (so a test sees when healthd's
first check arrived), binds every port on all addresses (a DR real must answer on the VIP held by
its `lo`), prints one line "ready" once every socket listens, and serves until
killed. Kept dependency-free and tiny because it starts under QEMU's TCG, where
every import costs.
"""

from __future__ import annotations

import functools
import http.server
import sys
import threading
from typing import TextIO


class _Handler(http.server.SimpleHTTPRequestHandler):
    request_log: TextIO

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        with _log_lock:
            self.request_log.write(f"{self.command} {self.path} {code}\n")
            self.request_log.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass  # errors go nowhere: stderr is not read, and a full pipe would stall the server


_log_lock = threading.Lock()


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: website.py ROOT LOG PORT [PORT...]", file=sys.stderr)
        return 2
    root, ports = argv[0], [int(p) for p in argv[2:]]
    _Handler.request_log = open(argv[1], "a")  # noqa: SIM115 - open for the life of the process
    handler = functools.partial(_Handler, directory=root)
    servers = [http.server.ThreadingHTTPServer(("0.0.0.0", port), handler) for port in ports]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    servers[0].serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
