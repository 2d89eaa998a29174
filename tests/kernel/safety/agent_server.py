"""A real server's load agent for the agent check: answers each connection with the first line of a file.

Run inside a real's namespace: `python3 -S agent_server.py PORT REPLY_FILE`. The file is read
on every connection, so a test changes the answer by rewriting it. Plain sockets and no
imports beyond the standard library's core, so that it starts quickly on the VM's emulated CPU.
"""

import socket
import sys


def main() -> None:
    port, reply_file = int(sys.argv[1]), sys.argv[2]
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(16)
    while True:
        conn, _peer = server.accept()
        try:
            with open(reply_file, "rb") as f:
                line = f.readline().strip()
            conn.sendall(line + b"\n")
        except OSError:
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    main()
