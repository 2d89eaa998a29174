"""Real servers for the service-check tests: each started from its Debian package on loopback.

Every server gets a private temporary directory for config, data, logs and pid
files, listens on 127.0.0.1 on free high ports, and is stopped by its fixture.
Nothing relies on a system instance: a fresh machine with the packages from
`./run`'s TEST_DEBS is enough. Start-up times are recorded in STARTUP and
printed at the end of the pytest run.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

HOST = "127.0.0.1"
STARTUP: dict[str, float] = {}  # server name -> seconds from launch to ready


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on right now (TCP and UDP both free, so either use is safe)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port found")


def tcp_ready(port: int, host: str = HOST) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return probe


@dataclass
class Daemon:
    """One running server process and where it listens."""

    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    ports: dict[str, int] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    stop_command: list[str] | None = None

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.stop_command:
            subprocess.run(self.stop_command, capture_output=True, timeout=30, check=False)
        if self.proc.poll() is None:
            # Process group: daemons with worker children (dovecot, freeradius) go as a whole.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Children that outlived the leader (forked workers) must not hold the ports.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def log_tail(self) -> str:
        out = self.workdir / "stdout.log"
        return out.read_text(errors="replace")[-3000:] if out.exists() else ""


def launch(
    name: str,
    argv: list[str],
    workdir: Path,
    ready: Callable[[], bool],
    timeout: float = 60.0,
    **popen: object,
) -> Daemon:
    """Start argv in its own process group and wait until `ready()` says it serves."""
    started = time.monotonic()
    log = open(workdir / "stdout.log", "wb")  # noqa: SIM115 - owned by the child for its lifetime
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=workdir, **popen,  # type: ignore[arg-type]
    )
    log.close()
    daemon = Daemon(name=name, proc=proc, workdir=workdir)
    while not ready():
        if proc.poll() is not None or time.monotonic() - started > timeout:
            daemon.stop()
            raise RuntimeError(f"{name} did not start:\n{daemon.log_tail()}")
        time.sleep(0.05)
    STARTUP[name] = time.monotonic() - started
    return daemon


def run_checked(argv: list[str], **kw: object) -> None:
    result = subprocess.run(argv, capture_output=True, timeout=120, check=False, **kw)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stdout!r} {result.stderr!r}")


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"healthd-{name}-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def chown(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, entry.pw_uid, entry.pw_gid)


# One private CA for the whole run: the TLS servers' certificates come from it, and the
# checks trust it through tlscafile (CA_FILE), as an operator with a private CA would.
_CA: list[trustme.CA] = []
CERT_NAMES = ("healthd.test", "*.healthd.test", HOST, "::1")


def test_ca() -> trustme.CA:
    if not _CA:
        _CA.append(trustme.CA())
    return _CA[0]


def ca_file() -> str:
    """The test CA's certificate as a PEM file (tlscafile), written once per run."""
    path = Path(tempfile.gettempdir()) / f"healthd-test-ca-{os.getpid()}.pem"
    if not path.exists():
        test_ca().cert_pem.write_to_path(str(path))
    return str(path)


def make_cert(directory: Path, *names: str, not_after: datetime.datetime | None = None,
              stem: str = "") -> tuple[Path, Path]:
    """A certificate from the test CA for `names` (default CERT_NAMES), as cert and key files."""
    cert, key = directory / f"{stem}cert.pem", directory / f"{stem}key.pem"
    leaf = test_ca().issue_cert(*(names or CERT_NAMES), not_after=not_after)
    cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o644)
    return cert, key


# ---- a listener that accepts and never answers --------------------------------


@contextlib.contextmanager
def silent_tcp() -> Iterator[int]:
    """A TCP port whose connections complete (kernel backlog) but never see a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        s.listen(64)
        yield s.getsockname()[1]


@contextlib.contextmanager
def silent_udp() -> Iterator[int]:
    """A UDP port that takes datagrams and never replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        yield s.getsockname()[1]


# ---- SMTP: exim ----------------------------------------------------------------


def start_exim(wd: Path) -> Daemon:
    smtp, submission = free_port(), free_port()
    for sub in ("spool", "log"):
        (wd / sub).mkdir()
    chown(wd / "spool", "Debian-exim")
    chown(wd / "log", "Debian-exim")
    conf = wd / "exim.conf"
    conf.write_text(textwrap.dedent(f"""\
        primary_hostname = mail.healthd.test
        spool_directory = {wd}/spool
        log_file_path = {wd}/log/%slog
        keep_environment =
        tls_advertise_hosts =
        local_interfaces = <; {HOST} ; ::1
        acl_smtp_rcpt = refuse_all
        begin acl
        refuse_all:
          deny
        begin routers
        begin transports
        """))
    exim = shutil.which("exim4") or shutil.which("exim") or "exim4"
    daemon = launch(
        "exim (smtp)",
        [exim, "-C", str(conf), "-bdf", "-oX", f"{smtp}:{submission}", "-oP", str(wd / "exim.pid")],
        wd, lambda: tcp_ready(smtp)() and tcp_ready(submission)(),
    )
    daemon.ports.update(smtp=smtp, submission=submission)
    return daemon


# ---- POP3 and IMAP: dovecot ----------------------------------------------------

MAIL_USER, MAIL_PASSWORD = "alice", "wonder land"


def start_dovecot(wd: Path) -> Daemon:
    ports = {name: free_port() for name in ("imap", "imaps", "pop", "pops")}
    cert, key = make_cert(wd)
    home = wd / "home"
    home.mkdir()
    home.chmod(0o777)
    (wd / "users").write_text(f"{MAIL_USER}:{{PLAIN}}{MAIL_PASSWORD}\n")
    conf = wd / "dovecot.conf"
    conf.write_text(textwrap.dedent(f"""\
        base_dir = {wd}/run
        state_dir = {wd}/state
        log_path = {wd}/dovecot.log
        protocols = imap pop3
        listen = {HOST}
        ssl = yes
        ssl_cert = <{cert}
        ssl_key = <{key}
        disable_plaintext_auth = no
        auth_mechanisms = plain login
        # The tests log in wrongly on purpose: no failure delay, no per-address penalty.
        auth_failure_delay = 0
        login_trusted_networks = 127.0.0.0/8
        passdb {{
          driver = passwd-file
          args = scheme=PLAIN {wd}/users
        }}
        userdb {{
          driver = static
          args = uid=nobody gid=nogroup home={home}/%u
        }}
        mail_location = maildir:~/Maildir
        service imap-login {{
          inet_listener imap {{
            port = {ports["imap"]}
          }}
          inet_listener imaps {{
            port = {ports["imaps"]}
            ssl = yes
          }}
        }}
        service pop3-login {{
          inet_listener pop3 {{
            port = {ports["pop"]}
          }}
          inet_listener pop3s {{
            port = {ports["pops"]}
            ssl = yes
          }}
        }}
        service anvil {{
          chroot =
        }}
        """))
    daemon = launch(
        "dovecot (pop, imap)", ["dovecot", "-F", "-c", str(conf)], wd,
        lambda: all(tcp_ready(p)() for p in ports.values()),
    )
    daemon.ports.update(ports)
    return daemon


# ---- DNS: dnsmasq --------------------------------------------------------------


def _dns_ready(port: int) -> Callable[[], bool]:
    import dns.message
    import dns.query

    def probe() -> bool:
        try:
            dns.query.udp(dns.message.make_query("www.healthd.test", "A"), HOST, port=port, timeout=0.3)
            return True
        except Exception:
            return False

    return probe


def start_dnsmasq(wd: Path) -> Daemon:
    port = free_port(socket.SOCK_DGRAM)
    argv = [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
        f"--port={port}", f"--listen-address={HOST},::1", "--bind-interfaces", "--user=nobody",
        f"--pid-file={wd}/dnsmasq.pid", "--log-facility=-",
        "--local=/healthd.test/", "--host-record=www.healthd.test,192.0.2.10,2001:db8::10",
        "--ptr-record=10.2.0.192.in-addr.arpa,www.healthd.test",
        # Too many addresses for a 512-byte UDP answer: the reply comes truncated.
        *(f"--host-record=big.healthd.test,192.0.2.{i}" for i in range(101, 141)),
    ]
    daemon = launch("dnsmasq (dns)", argv, wd, _dns_ready(port))
    daemon.ports["dns"] = port
    return daemon


# ---- NNTP: a tiny responder (no Debian NNTP server starts cheaply) -------------

NNTP_SERVER = textwrap.dedent("""\
    import asyncio, sys

    async def serve(reader, writer):
        writer.write(sys.argv[2].encode() + b"\\r\\n")
        await writer.drain()
        try:
            await reader.readline()
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """)


def start_nntp(wd: Path, greeting: str) -> Daemon:
    import sys

    port = free_port()
    script = wd / "nntpd.py"
    script.write_text(NNTP_SERVER)
    daemon = launch(f"nntp responder ({greeting[:3]})", [sys.executable, str(script), str(port), greeting],
                    wd, tcp_ready(port))
    daemon.ports["nntp"] = port
    return daemon


# ---- FTP: vsftpd ---------------------------------------------------------------

FTP_USER, FTP_PASSWORD = "ftpcheck", "s3cret-ftp"
FTP_FILE, FTP_CONTENT = "health.txt", "healthd ftp content OK\n"


def start_vsftpd(wd: Path) -> Daemon:
    port = free_port()
    anon = wd / "anon"
    anon.mkdir()
    anon.chmod(0o555)
    (anon / FTP_FILE).write_text(FTP_CONTENT)
    empty = wd / "empty"
    empty.mkdir()
    empty.chmod(0o555)
    conf = wd / "vsftpd.conf"
    conf.write_text(textwrap.dedent(f"""\
        listen=YES
        listen_ipv6=NO
        listen_address={HOST}
        listen_port={port}
        background=NO
        anonymous_enable=YES
        anon_root={anon}
        no_anon_password=YES
        local_enable=NO
        write_enable=NO
        pasv_enable=YES
        pasv_min_port=0
        pasv_max_port=0
        secure_chroot_dir={empty}
        run_as_launching_user=NO
        # the commands each client sent, in vsftpd.log (tests read which path RETR asked for)
        xferlog_enable=YES
        xferlog_std_format=NO
        log_ftp_protocol=YES
        vsftpd_log_file={wd}/vsftpd.log
        seccomp_sandbox=NO
        """))
    daemon = launch("vsftpd (ftp)", ["vsftpd", str(conf)], wd, tcp_ready(port))
    daemon.ports["ftp"] = port
    return daemon


# ---- PostgreSQL ----------------------------------------------------------------

SQL_USER, SQL_PASSWORD, SQL_DATABASE = "checker", "pg-and-my secret", "health"


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian package postgresql)")
    return str(found[-1])


def start_postgres(wd: Path) -> Daemon:
    port = free_port()
    data = wd / "data"
    (wd / "pwfile").write_text(SQL_PASSWORD + "\n")
    chown(wd, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    started = time.monotonic()
    run_checked([*as_pg, _pg_bin("initdb"), "-D", str(data), "-U", SQL_USER, "--auth=scram-sha-256",
                 f"--pwfile={wd}/pwfile", "-E", "UTF8", "--no-sync", "--no-instructions"])
    argv = [*as_pg, _pg_bin("postgres"), "-D", str(data), "-k", str(wd), "-h", HOST, "-p", str(port),
            "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=20"]
    daemon = launch("postgresql (pgsql)", argv, wd, tcp_ready(port))
    run_checked([*as_pg, _pg_bin("psql"), "-h", str(wd), "-p", str(port), "-U", SQL_USER, "-d", "postgres",
                 "-c", f"CREATE DATABASE {SQL_DATABASE}"], env={**os.environ, "PGPASSWORD": SQL_PASSWORD})
    run_checked([*as_pg, _pg_bin("psql"), "-h", str(wd), "-p", str(port), "-U", SQL_USER, "-d", SQL_DATABASE,
                 "-c", "CREATE TABLE pool (host text, enabled boolean);"
                       "INSERT INTO pool VALUES ('a', true), ('b', false);"],
                env={**os.environ, "PGPASSWORD": SQL_PASSWORD})
    STARTUP[daemon.name] = time.monotonic() - started  # initdb included
    daemon.ports["pgsql"] = port
    return daemon


# ---- MariaDB -------------------------------------------------------------------


def start_mariadb(wd: Path) -> Daemon:
    port = free_port()
    data, sock = wd / "data", wd / "mysqld.sock"
    data.mkdir()
    chown(wd, "mysql")
    started = time.monotonic()
    common = [f"--datadir={data}", "--user=mysql", "--innodb-buffer-pool-size=16M",
              "--innodb-log-file-size=8M", "--skip-name-resolve"]
    run_checked(["mariadb-install-db", "--no-defaults", *common, "--auth-root-authentication-method=socket",
                 "--skip-test-db"])
    argv = ["mariadbd", "--no-defaults", *common, f"--socket={sock}", f"--port={port}",
            f"--bind-address={HOST}", f"--pid-file={wd}/mysqld.pid", f"--log-error={wd}/mysqld.err",
            "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"]
    daemon = launch("mariadb (mysql)", argv, wd, lambda: tcp_ready(port)() and sock.exists())
    setup = (
        f"CREATE USER '{SQL_USER}'@'%' IDENTIFIED BY '{SQL_PASSWORD}';"
        f"CREATE DATABASE {SQL_DATABASE};"
        f"GRANT SELECT ON {SQL_DATABASE}.* TO '{SQL_USER}'@'%';"
        f"CREATE TABLE {SQL_DATABASE}.pool (host text, enabled boolean);"
        f"INSERT INTO {SQL_DATABASE}.pool VALUES ('a', true), ('b', false);"
    )
    run_checked(["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root", "-e", setup])
    STARTUP[daemon.name] = time.monotonic() - started  # mariadb-install-db included
    daemon.ports["mysql"] = port
    return daemon


# ---- LDAP: slapd ---------------------------------------------------------------

LDAP_SUFFIX = "dc=healthd,dc=test"
LDAP_BIND_DN, LDAP_PASSWORD = f"cn=checker,{LDAP_SUFFIX}", "ldap pass word"


def start_slapd(wd: Path) -> Daemon:
    ldap_port, ldaps_port = free_port(), free_port()
    cert, key = make_cert(wd)
    (wd / "db").mkdir()
    conf = wd / "slapd.conf"
    conf.write_text(textwrap.dedent(f"""\
        include /etc/ldap/schema/core.schema
        pidfile {wd}/slapd.pid
        argsfile {wd}/slapd.args
        modulepath /usr/lib/ldap
        moduleload back_mdb
        TLSCertificateFile {cert}
        TLSCertificateKeyFile {key}
        database mdb
        suffix "{LDAP_SUFFIX}"
        rootdn "cn=admin,{LDAP_SUFFIX}"
        directory {wd}/db
        maxsize 10485760
        access to attrs=userPassword by anonymous auth by * none
        access to * by * read
        """))
    (wd / "seed.ldif").write_text(textwrap.dedent(f"""\
        dn: {LDAP_SUFFIX}
        objectClass: dcObject
        objectClass: organization
        dc: healthd
        o: healthd tests

        dn: ou=people,{LDAP_SUFFIX}
        objectClass: organizationalUnit
        ou: people

        dn: cn=alice,ou=people,{LDAP_SUFFIX}
        objectClass: person
        cn: alice
        sn: Liddell

        dn: {LDAP_BIND_DN}
        objectClass: person
        cn: checker
        sn: Checker
        userPassword: {LDAP_PASSWORD}
        """))
    started = time.monotonic()
    run_checked(["slapadd", "-f", str(conf), "-l", str(wd / "seed.ldif")])
    argv = ["slapd", "-f", str(conf), "-h", f"ldap://{HOST}:{ldap_port}/ ldaps://{HOST}:{ldaps_port}/",
            "-d", "0"]
    daemon = launch("slapd (ldap, ldaps)", argv, wd,
                    lambda: tcp_ready(ldap_port)() and tcp_ready(ldaps_port)())
    STARTUP[daemon.name] = time.monotonic() - started  # slapadd included
    daemon.ports.update(ldap=ldap_port, ldaps=ldaps_port)
    return daemon


# ---- SIP: kamailio -------------------------------------------------------------

SIP_BUSY_USER = "busy"  # OPTIONS to this user is answered 486 Busy Here


def start_kamailio(wd: Path) -> Daemon:
    port = free_port()
    conf = wd / "kamailio.cfg"
    conf.write_text(textwrap.dedent(f"""\
        #!KAMAILIO
        debug=1
        log_stderror=yes
        children=1
        tcp_children=1
        listen=udp:{HOST}:{port}
        listen=tcp:{HOST}:{port}
        listen=udp:[::1]:{port}
        listen=tcp:[::1]:{port}
        loadmodule "sl.so"
        loadmodule "pv.so"
        loadmodule "textops.so"
        request_route {{
            if ($rU == "{SIP_BUSY_USER}") {{
                sl_send_reply("486", "Busy Here");
                exit;
            }}
            if (is_method("OPTIONS")) {{
                sl_send_reply("200", "OK");
                exit;
            }}
            sl_send_reply("405", "Method Not Allowed");
        }}
        """))
    argv = ["kamailio", "-f", str(conf), "-DD", "-E", "-m", "32", "-M", "8",
            "-P", str(wd / "kamailio.pid"), "-Y", str(wd), "-w", str(wd)]
    daemon = launch("kamailio (sip)", argv, wd, tcp_ready(port))
    daemon.ports["sip"] = port
    return daemon


# ---- RADIUS: freeradius --------------------------------------------------------

RADIUS_SECRET, RADIUS_USER, RADIUS_PASSWORD = "shared-by-healthd", "alice", "radius pass"
RADIUS_CONF = Path("/etc/freeradius/3.0")


def start_freeradius(wd: Path) -> Daemon:
    port = free_port(socket.SOCK_DGRAM)
    raddb = wd / "raddb"
    shutil.copytree(RADIUS_CONF, raddb, symlinks=True)
    # Only what PAP against the users file needs: fewer modules start faster and need no EAP certificates.
    for unused in ("eap", "mschap", "ntlm_auth", "dynamic_clients", "soh", "digest", "chap"):
        (raddb / "mods-enabled" / unused).unlink(missing_ok=True)
    for site in (raddb / "sites-enabled").iterdir():
        site.unlink()
    (raddb / "sites-enabled" / "healthd").write_text(textwrap.dedent(f"""\
        server default {{
            listen {{
                type = auth
                ipaddr = {HOST}
                port = {port}
            }}
            authorize {{
                files
                pap
            }}
            authenticate {{
                Auth-Type PAP {{
                    pap
                }}
            }}
            post-auth {{
            }}
        }}
        """))
    (raddb / "clients.conf").write_text(
        f"client healthd {{\n  ipaddr = {HOST}\n  secret = {RADIUS_SECRET}\n}}\n")
    users = raddb / "mods-config" / "files" / "authorize"
    users.write_text(f'{RADIUS_USER} Cleartext-Password := "{RADIUS_PASSWORD}"\n')
    conf = raddb / "radiusd.conf"
    conf.write_text(conf.read_text()
                    .replace("logdir = /var/log/freeradius", f"logdir = {wd}/log")
                    .replace("run_dir = ${localstatedir}/run/${name}", f"run_dir = {wd}/run"))
    (wd / "log").mkdir()
    (wd / "run").mkdir()
    chown(wd, "freerad")
    argv = ["freeradius", "-f", "-d", str(raddb), "-l", "stdout"]
    daemon = launch("freeradius (radius)", argv, wd, lambda: _udp_bound(port))
    daemon.ports["radius"] = port
    return daemon


def _udp_bound(port: int) -> bool:
    """Whether something has bound UDP `port` on HOST (freeradius answers nothing without a secret)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


# ---- a hostile server: floods every connection with one endless line -----------


@contextlib.contextmanager
def flooding_tcp(total: int = 4 * 1024 * 1024) -> Iterator[int]:
    """A TCP port whose every connection receives `total` bytes without a line break."""
    import threading

    stop = threading.Event()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    listener.listen(16)
    listener.settimeout(0.2)

    def flood(conn: socket.socket) -> None:
        chunk = b"2" * 65536  # starts like a positive reply code, never ends the line
        with conn:
            conn.settimeout(5)
            sent = 0
            try:
                while sent < total and not stop.is_set():
                    conn.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the client gave up, as it should

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=flood, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


# ---- a TLS listener that records the SNI each client sent -----------------------


@contextlib.contextmanager
def sni_recorder(greeting: bytes, *names: str, not_after: datetime.datetime | None = None,
                 ) -> Iterator[tuple[int, list[str | None]]]:
    """A TLS port that notes each handshake's server name, sends `greeting` and closes.

    Its certificate comes from the test CA, for `names` (default CERT_NAMES) until `not_after`.
    """
    import ssl
    import threading

    seen: list[str | None] = []
    with workdir("sni") as wd:
        cert, key = make_cert(wd, *names, not_after=not_after)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = lambda _sock, name, _ctx: seen.append(name)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((HOST, 0))
        listener.listen(8)
        listener.settimeout(0.2)
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                try:
                    conn.settimeout(3)
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(greeting)
                except OSError:
                    pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield listener.getsockname()[1], seen
        finally:
            stop.set()
            thread.join(2)
            listener.close()
