"""A throw-away nginx serving fixed answers on many loopback addresses, as a fast backend for benchmarks.

Runs nginx-light (Debian) with its own minimal config in a temporary directory,
in the foreground, one worker, no logs: it is there so that the server side is
never the bottleneck of a measurement of the checker's cost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_CONF = """\
worker_processes {workers};
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log crit;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    keepalive_timeout 0;
    lingering_close off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
{listens}
        location / {{ return 200 "healthd bench: ok\\n"; }}
    }}
{tls_server}}}
"""

_TLS_SERVER = """\
    server {{
{listens}
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{ return 200 "healthd bench: ok\\n"; }}
    }}
"""


def loopback_addresses(count: int, first_octet: int = 77) -> list[str]:
    """`count` distinct 127.x.y.z addresses (all of 127/8 is local on Linux), from 127.77.0.1 on.

    Host parts 0 and 255 are skipped so that no address looks like a network or broadcast one.
    """
    out: list[str] = []
    x, y, z = first_octet, 0, 0
    while len(out) < count:
        z += 1
        if z == 255:
            z, y = 1, y + 1
            if y == 256:
                y, x = 0, x + 1
        out.append(f"127.{x}.{y}.{z}")
    return out


@contextlib.contextmanager
def nginx(addresses: list[str], port: int, workers: int = 1,
          tls: tuple[bytes, bytes] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """nginx answering `GET /` with 200 on every address:port until the block ends; yields its master.

    With `tls` (PEM certificate chain, PEM key), HTTPS is served on port + 1 as well.
    It runs in its own process group, so that a benchmark can SIGSTOP or SIGKILL
    master and workers together to make its reals hang or refuse.
    """
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="healthd-bench-nginx-") as root:
        listens = "\n".join(f"        listen {a}:{port} backlog=4096;" for a in addresses)
        tls_server = ""
        if tls is not None:
            Path(root, "cert.pem").write_bytes(tls[0])
            Path(root, "key.pem").write_bytes(tls[1])
            tls_server = _TLS_SERVER.format(
                listens="\n".join(f"        listen {a}:{port + 1} ssl backlog=4096;" for a in addresses),
                cert=f"{root}/cert.pem", key=f"{root}/key.pem")
        conf = Path(root, "nginx.conf")
        conf.write_text(_CONF.format(root=root, listens=listens, workers=workers, tls_server=tls_server))
        proc = subprocess.Popen([binary, "-c", str(conf), "-e", f"{root}/error.log"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _wait_listening(addresses, port, proc)
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_listening(addresses: list[str], port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    for address in (addresses[0], addresses[-1]):
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"nginx exited with status {proc.returncode}: {err.strip()}")
            with socket.socket() as s:
                if s.connect_ex((address, port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not listen on {address}:{port} within 30 s")
            time.sleep(0.05)
