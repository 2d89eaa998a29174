"""One long-lived HTTP/1.1 connection: a request every INTERVAL seconds on the same socket until told to stop.

Run inside the client's namespace: `python3 -S keepalive_client.py HOST PORT OUT_FILE STOP_FILE`.
Each answer's body (the real's name) is appended to OUT_FILE as "SECONDS BODY" (or "SECONDS
failed: reason" when the connection broke), so a test sees that the connection kept working
and which real served it. The connection is closed when STOP_FILE exists.
"""

import os
import socket
import sys
import time

INTERVAL = 0.5
LIMIT = 600  # seconds: a bound, whatever happens to the test


def read_response(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("connection closed")
        rest += chunk
    return rest[:length], rest[length:]


def main() -> None:
    host, port, out, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    start = time.monotonic()
    sock = socket.create_connection((host, port), timeout=5)
    buf = b""
    with open(out, "a") as log:
        while not os.path.exists(stop) and time.monotonic() - start < LIMIT:
            request = f"GET /index.html HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n"
            try:
                sock.sendall(request.encode())
                body, buf = read_response(sock, buf)
                log.write(f"{time.monotonic() - start:.2f} {body.decode().strip()}\n")
            except OSError as exc:
                log.write(f"{time.monotonic() - start:.2f} failed: {exc}\n")
                log.flush()
                return
            log.flush()
            time.sleep(INTERVAL)
    sock.close()


if __name__ == "__main__":
    main()
