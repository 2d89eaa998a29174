"""A real nginx serving HTTPS on loopback, for the session-resumption tests: its resumption settings, reload.

The answer's body says whether nginx resumed the session (`$ssl_session_reused`: "r" or
".") and which protocol it spoke, so a test sees the server's side of every check.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

HOST = "127.0.0.1"

_CONF = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    keepalive_timeout 0;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen {host}:{port} ssl;
        ssl_certificate {root}/cert.pem;
        ssl_certificate_key {root}/key.pem;
        ssl_protocols {protocols};
        ssl_session_tickets {tickets};
        ssl_session_cache {cache};
{ticket_key}        location / {{ return 200 "good reused=$ssl_session_reused $ssl_protocol\\n"; }}
    }}
}}
"""


@dataclass
class Resumption:
    """nginx's session settings: `tickets` (ssl_session_tickets), `cache` (ssl_session_cache),
    `ticket_key` (a fixed ssl_session_ticket_key file, so tickets survive a reload)."""

    tickets: bool = True
    cache: str = "off"  # "off" or e.g. "shared:healthdtest:1m"
    protocols: str = "TLSv1.2 TLSv1.3"
    ticket_key: bool = False


class Nginx:
    def __init__(self, root: Path, port: int, settings: Resumption) -> None:
        self.root, self.port, self.settings = root, port, settings
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self, cert: trustme.LeafCert) -> None:
        cert.private_key_pem.write_to_path(str(self.root / "key.pem"))
        (self.root / "cert.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        s = self.settings
        ticket_key = ""
        if s.ticket_key:
            key = self.root / "ticket.key"
            if not key.exists():
                key.write_bytes(os.urandom(80))
            ticket_key = f"        ssl_session_ticket_key {key};\n"
        (self.root / "nginx.conf").write_text(_CONF.format(
            root=self.root, host=HOST, port=self.port, protocols=s.protocols,
            tickets="on" if s.tickets else "off", cache=s.cache, ticket_key=ticket_key))

    def start(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([binary, "-c", str(self.root / "nginx.conf"), "-e",
                                      str(self.root / "error.log")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)

    def reload(self, cert: trustme.LeafCert) -> None:
        """Switch to `cert` as an operator does (new files, SIGHUP); returns once new connections get it."""
        self.write(cert)
        assert self.proc is not None
        old_workers = self.workers()
        os.kill(self.proc.pid, signal.SIGHUP)
        wanted = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())).digest()
        deadline = time.monotonic() + 15
        # done when the old worker has exited (until then it may still accept) and the new one serves `cert`
        while self.workers() & old_workers or peer_fingerprint(self.port) != wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not take the new certificate: {self.log()}")
            time.sleep(0.05)

    def workers(self) -> set[int]:
        """The pids of the master's worker processes now."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return {int(pid) for pid in children.read_text().split()}
        except OSError:
            return set()

    def log(self) -> str:
        path = self.root / "error.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def peer_fingerprint(port: int) -> bytes | None:
    """SHA-256 of the certificate a fresh (full) handshake is shown now; None if none."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((HOST, port), timeout=2) as raw, ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return hashlib.sha256(der).digest() if der else None


@contextlib.contextmanager
def nginx_https(cert: trustme.LeafCert, port: int, settings: Resumption) -> Iterator[Nginx]:
    """nginx serving HTTPS with `cert` on 127.0.0.1:port until the block ends."""
    with tempfile.TemporaryDirectory(prefix="healthd-test-nginx-") as root:
        server = Nginx(Path(root), port, settings)
        server.write(cert)
        server.start()
        try:
            deadline = time.monotonic() + 15
            while peer_fingerprint(port) is None:
                assert server.proc is not None
                if server.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {server.log()}")
                time.sleep(0.05)
            yield server
        finally:
            server.stop()
