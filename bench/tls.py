"""HTTPS checks at scale: CPU per check with TLS session resumption, against nginx on loopback.

    python -m bench tls [--checks N] [--rounds R] [--concurrency C] [--addresses A]
                        [--engine-reals N] [--window S]

One nginx (one worker, its own process, not counted) serves HTTPS on A loopback
addresses, on one port per resumption setting: none (every handshake full), TLS 1.3
tickets, TLS 1.3 with tickets off and a shared session cache (stateful tickets), TLS 1.2
session IDs (tickets off, shared cache), TLS 1.2 tickets; plain HTTP beside them. Each row
runs N checks through healthd's CheckRunner (C in flight, spread over the addresses, so
each address is one real with its own session), R rounds, and prints the median CPU time
of this process per check (user + sys) and the share of handshakes resumed.

Floor, in the same run: a bare blocking Python ssl loop, no asyncio, one check after
another (connect, handshake offering the address's last session, GET, read to the end,
RST close), full and resumed, taking and offering sessions as healthd does
(healthd.checks.sslsession). And OpenSSL's part alone: the client side of a resumed
handshake and one GET over memory BIOs, no sockets. Reference: the previous full-handshake figure, 2,125 µs
per HTTPS check (bench/checks_results.md, `./run bench checks`, load ~5).

Then the engine (`--engine-reals`, default 2,000; 0 skips it): that many HTTPS reals on
their own addresses (TLS 1.3 tickets), checkinterval 1, the real Engine, Reconciler and
in-memory table, measured over `--window` seconds after the first round: checks/s, CPU
share of one core, CPU per check, lateness, resumed share, the machine's load.
Bounded: every row stops after N checks or 60 s; the engine after its window plus 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.checks_nginx import _wait_listening, loopback_addresses
from healthd.checks import sslsession, tls
from healthd.checks.context import CheckContext
from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol

PORT = 19010  # plain HTTP; HTTPS kinds on PORT + 1 ...
ROW_LIMIT = 60.0
PREVIOUS_FULL_US = 2125.0  # bench/checks_results.md: "HTTPS GET, full handshake", healthd.checks.http
TARGET_US = 400.0
NAME = "bench.example.org"

# kind -> (port offset, nginx directives)
KINDS: dict[str, tuple[int, str]] = {
    "full handshake (no resumption)": (1, "ssl_session_tickets off; ssl_session_cache off;"),
    "TLS 1.3 tickets": (2, "ssl_session_tickets on; ssl_session_cache off;"),
    "TLS 1.3 session cache": (3, "ssl_session_tickets off; ssl_session_cache shared:bench13:20m;"),
    "TLS 1.2 session IDs": (4, "ssl_protocols TLSv1.2; ssl_session_tickets off; "
                               "ssl_session_cache shared:bench12:20m;"),
    "TLS 1.2 tickets": (5, "ssl_protocols TLSv1.2; ssl_session_tickets on; ssl_session_cache off;"),
}
FULL, TICKETS = "full handshake (no resumption)", "TLS 1.3 tickets"

_CONF = """\
worker_processes 1;
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
    ssl_certificate {root}/cert.pem;
    ssl_certificate_key {root}/key.pem;
{servers}}}
"""
_SERVER = """\
    server {{
{listens}
        {directives}
        location / {{ return 200 "healthd bench: ok\\n"; }}
    }}
"""


@contextlib.contextmanager
def nginx(addresses: list[str], kinds: dict[str, tuple[int, str]], plain: bool,
          material: tuple[bytes, bytes]) -> Iterator[None]:
    """nginx serving every kind of `kinds` on its port at every address (and HTTP on PORT if `plain`)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="healthd-bench-tls-") as root:
        Path(root, "cert.pem").write_bytes(material[0])
        Path(root, "key.pem").write_bytes(material[1])
        servers = []
        if plain:
            servers.append(_SERVER.format(listens="\n".join(f"        listen {a}:{PORT} backlog=4096;"
                                                            for a in addresses), directives=""))
        for offset, directives in kinds.values():
            servers.append(_SERVER.format(
                listens="\n".join(f"        listen {a}:{PORT + offset} ssl backlog=4096;" for a in addresses),
                directives=directives))
        conf = Path(root, "nginx.conf")
        conf.write_text(_CONF.format(root=root, servers="".join(servers)))
        proc = subprocess.Popen([binary, "-c", str(conf), "-e", f"{root}/error.log"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            for offset, _ in kinds.values():
                _wait_listening(addresses, PORT + offset, proc)
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _material(ca_file: str) -> tuple[bytes, bytes]:
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(ca_file)
    cert = ca.issue_cert(NAME)
    return b"".join(b.bytes() for b in cert.cert_chain_pems), cert.private_key_pem.bytes()


def _spec(address: str, port: int, ca_file: str | None) -> CheckSpec:
    https = ca_file is not None
    return CheckSpec(type=CheckType.NEGOTIATE, service="https" if https else "http",
                     protocol=ServiceProtocol.TCP, family=4, address=address, port=port,
                     scheme="https" if https else "http", receive_re="bench: ok", negotiatetimeout=3.0,
                     checktimeout=3.0,
                     tls=tls.resolve("https", address, None, cafile=ca_file) if https else None)


@dataclass
class Row:
    name: str
    us: list[float] = field(default_factory=list)
    user: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    resumed: int = 0
    handshakes: int = 0
    failed: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.us) if self.us else 0.0


async def _measure(runner: CheckRunner, specs: list[CheckSpec], total: int, concurrency: int,
                   row: Row) -> None:
    sessions = runner.ctx.sessions
    full0, resumed0 = sessions.full, sessions.resumed
    done = next_index = 0
    stop_at = time.monotonic() + ROW_LIMIT

    async def worker() -> None:
        nonlocal done, next_index
        while next_index < total and time.monotonic() < stop_at:
            spec = specs[next_index % len(specs)]
            next_index += 1
            outcome = await runner.run(spec)
            done += 1
            row.failed += not outcome.ok

    gc.collect()
    t0, wall0 = os.times(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    t1, wall = os.times(), time.perf_counter() - wall0
    n = max(done, 1)
    row.us.append((t1.user - t0.user + t1.system - t0.system) / n * 1e6)
    row.user.append((t1.user - t0.user) / n * 1e6)
    row.rate.append(done / wall)
    row.resumed += sessions.resumed - resumed0
    row.handshakes += sessions.full - full0 + sessions.resumed - resumed0


def _floor(addresses: list[str], port: int, context: ssl.SSLContext, total: int, row: Row,
           sessions: dict[str, object] | None) -> None:
    """The same check without asyncio or healthd: blocking sockets, one after another.

    With `sessions` (address -> last session, kept between calls), each handshake offers one.
    """
    request = f"GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode()
    linger = struct.pack("ii", 1, 0)
    resume = sessions is not None
    sessions = {} if sessions is None else sessions
    stop_at = time.monotonic() + ROW_LIMIT
    done = 0
    t0, wall0 = os.times(), time.perf_counter()
    for i in range(total):
        if time.monotonic() > stop_at:
            break
        address = addresses[i % len(addresses)]
        raw = socket.create_connection((address, port), timeout=3)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # Finished and request: no Nagle wait
        try:
            conn = context.wrap_socket(raw, do_handshake_on_connect=False)
            session = sessions.get(address) if resume else None
            if session is not None:
                sslsession.offer(conn, session)  # type: ignore[arg-type]
            conn.do_handshake()
            conn.sendall(request)
            body = b""
            while chunk := conn.recv(65536):
                body += chunk
            row.failed += b"bench: ok" not in body
            row.handshakes += 1
            row.resumed += conn.session_reused
            if resume and (taken := sslsession.take(conn)) is not None:  # type: ignore[arg-type]
                sessions[address] = taken
            conn.close()
        except OSError:
            row.failed += 1
        finally:
            raw.close()
        done += 1
    t1, wall = os.times(), time.perf_counter() - wall0
    n = max(done, 1)
    row.us.append((t1.user - t0.user + t1.system - t0.system) / n * 1e6)
    row.user.append((t1.user - t0.user) / n * 1e6)
    row.rate.append(done / wall)


def _memory_floor(client: ssl.SSLContext, server: ssl.SSLContext, total: int, row: Row) -> None:
    """OpenSSL alone: the client's side of a resumed TLS 1.3 handshake, a GET and its answer, over
    memory BIOs against an in-process server; only the client's calls are timed (thread CPU). The
    server's work in between leaves the caches colder than a real client's: an upper estimate."""
    request = f"GET / HTTP/1.1\r\nHost: {NAME}\r\n\r\n".encode()
    answer = b"HTTP/1.1 200 OK\r\n\r\nok"
    session = None
    spent = 0

    def step(obj: ssl.SSLObject) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            obj.do_handshake()

    for i in range(total + 1):
        ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
        t0 = time.thread_time_ns()
        c = client.wrap_bio(ci, co)
        if session is not None:
            sslsession.offer(c, session)
        step(c)
        hello = co.read()
        t1 = time.thread_time_ns()
        srv = server.wrap_bio(si, so, server_side=True)
        si.write(hello)
        step(srv)
        flight = so.read()
        t2 = time.thread_time_ns()
        ci.write(flight)
        step(c)
        c.write(request)
        finished = co.read()
        t3 = time.thread_time_ns()
        si.write(finished)
        step(srv)
        srv.read(1024)
        srv.write(answer)
        reply = so.read()
        t4 = time.thread_time_ns()
        ci.write(reply)
        with contextlib.suppress(ssl.SSLWantReadError):
            while c.read(65536):
                pass
        row.handshakes += session is not None
        row.resumed += session is not None and c.session_reused
        session = sslsession.take(c)
        t5 = time.thread_time_ns()
        if i:  # the first one (a full handshake) is not counted
            spent += (t1 - t0) + (t3 - t2) + (t5 - t4)
    row.us.append(spent / max(total, 1) / 1000)


async def _rows(args: argparse.Namespace, ca_file: str, material_file: str) -> list[Row]:
    addresses = loopback_addresses(args.addresses)
    runner = CheckRunner(CheckContext())
    await runner.start()
    policy = tls.resolve("https", addresses[0], None, cafile=ca_file)
    context = await runner.ctx.tls.context(policy)
    plan: list[tuple[str, list[CheckSpec], int]] = [("HTTP GET (no TLS), for reference",
                                                     [_spec(a, PORT, None) for a in addresses], args.checks)]
    for kind, (offset, _) in KINDS.items():
        count = max(1, args.checks // 5) if kind == FULL else args.checks
        plan.append((f"HTTPS, {kind}", [_spec(a, PORT + offset, ca_file) for a in addresses], count))
    rows = {name: Row(name) for name, _, _ in plan}
    floor_full, floor_resumed = Row("floor: bare ssl loop, full handshake"), Row(
        "floor: bare ssl loop, TLS 1.3 tickets")
    floor_sessions: dict[str, object] = {}
    floor_memory = Row("OpenSSL client work alone, TLS 1.3 resumed")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(material_file)
    try:
        for _, specs, _ in plan:  # warm up: first connections, and every real's first (full) handshake
            await _measure(runner, specs, len(specs), args.concurrency, Row("warm-up"))
        _floor(addresses, PORT + KINDS[TICKETS][0], context, len(addresses), Row("warm-up"), floor_sessions)
        for _ in range(args.rounds):
            for name, specs, count in plan:
                await _measure(runner, specs, count, args.concurrency, rows[name])
            _floor(addresses, PORT + KINDS[FULL][0], context, max(1, args.checks // 5), floor_full, None)
            _floor(addresses, PORT + KINDS[TICKETS][0], context, args.checks, floor_resumed, floor_sessions)
            _memory_floor(context, server, args.checks, floor_memory)
    finally:
        await runner.close()
    return [*rows.values(), floor_full, floor_resumed, floor_memory]


# ---- the engine: N HTTPS reals at checkinterval 1 ------------------------------------------


@dataclass
class EngineResult:
    n: int
    rate: float
    cpu_us: float
    cpu_share: float
    lateness_p99_ms: float
    lateness_max_ms: float
    resumed_share: float
    down: int
    shed: int
    rss_mb: float
    load: tuple[float, float, float]


async def _engine(n: int, window: float, ca_file: str) -> EngineResult:
    from healthd.config import parse_text
    from healthd.engine.engine import Engine
    from healthd.ipvs.memory import MemoryTable
    from healthd.ipvs.reconcile import Reconciler
    from healthd.vocab import State

    addresses = loopback_addresses(n, first_octet=78)
    lines = ["checkinterval=1", "checktimeout=3", "failurecount=1", "quiescent=no", f"tlscafile={ca_file}",
             ""]
    for i in range(0, n, 100):
        lines.append(f"virtual=10.{i // 25000}.{i // 100 % 250}.1:443")
        lines += [f"\treal={a}:{PORT + KINDS[TICKETS][0]} masq" for a in addresses[i : i + 100]]
        lines += ["\tservice=https", '\trequest="/"', '\treceive="ok"', "\tscheduler=wrr", ""]
    config = parse_text("\n".join(lines), f"bench-tls-{n}.cf")
    runner = CheckRunner()
    engine = Engine(config, runner, Reconciler(MemoryTable()))
    await engine.start()
    try:
        await asyncio.wait_for(engine.first_round.wait(), 30)
        await asyncio.sleep(2)  # the start-up spread settles into the steady rhythm
        sched, sessions = engine.scheduler, runner.ctx.sessions
        sched.lateness.reset()
        runs0, shed0 = sched.runs_finished, sched.ticks_shed
        full0, resumed0 = sessions.full, sessions.resumed
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(window)
        cpu1, wall1 = time.process_time(), time.monotonic()
        runs = sched.runs_finished - runs0
        stats = sched.stats(exact=True)
        full, resumed = sessions.full - full0, sessions.resumed - resumed0
        down = sum(1 for spec in engine._users
                   if (rec := engine.health.get(spec)) and rec.state is not State.UP)
        shed = sched.ticks_shed - shed0
    finally:
        await engine.stop(cleanstop=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu, wall = cpu1 - cpu0, wall1 - wall0
    return EngineResult(n, runs / wall, cpu / max(runs, 1) * 1e6, cpu / wall,
                        stats.lateness_p99 * 1000, stats.lateness_max * 1000,
                        resumed / max(full + resumed, 1), down, shed, rss, os.getloadavg())


# ---- report --------------------------------------------------------------------------------


def _report(rows: list[Row], args: argparse.Namespace, load: tuple[float, ...]) -> None:
    print(f"\nchecks per row: {args.checks} (full handshakes: {max(1, args.checks // 5)}), {args.rounds} "
          f"rounds (median), {args.concurrency} in flight, {args.addresses} loopback addresses = reals, "
          f"nginx 1 worker; "
          f"load average before: {' '.join(f'{x:.1f}' for x in load)}")
    print(f"{'row':44} {'us CPU/check':>12} {'user':>7} {'checks/s':>9} {'1-core max/s':>12} "
          f"{'resumed':>8} {'failed':>6}")
    for r in rows:
        share = f"{r.resumed / r.handshakes * 100:.0f} %" if r.handshakes else "-"
        print(f"{r.name:44} {r.median:12.1f} {statistics.median(r.user) if r.user else 0:7.1f} "
              f"{statistics.median(r.rate) if r.rate else 0:9.0f} {1e6 / r.median if r.median else 0:12.0f} "
              f"{share:>8} {r.failed:6d}")
    by = {r.name: r.median for r in rows}
    floor_resumed = by["floor: bare ssl loop, TLS 1.3 tickets"]
    openssl_alone = by["OpenSSL client work alone, TLS 1.3 resumed"]
    floor_full = by["floor: bare ssl loop, full handshake"]
    print(f"\nreference: {PREVIOUS_FULL_US:.0f} us per HTTPS check with a full handshake "
          f"(bench/checks_results.md); target <= {TARGET_US:.0f} us per resumed check")
    for r in rows:
        if not r.name.startswith("HTTPS"):
            continue
        floor = floor_full if FULL in r.name else floor_resumed
        print(f"  {r.name[7:]:36} {r.median:7.0f} us: {PREVIOUS_FULL_US / r.median:5.2f}x cheaper than the "
              f"reference, {r.median / floor:4.2f}x the bare-ssl floor ({floor:.0f} us)"
              + ("" if FULL in r.name else f", {'meets' if r.median <= TARGET_US else 'misses'} the target"))
    print(f"  of a resumed check, OpenSSL's client work alone (memory BIOs, no sockets, no asyncio; the "
          f"server runs in the same thread, between the timed calls) is {openssl_alone:.0f} us")


def _report_engine(r: EngineResult) -> None:
    print(f"\nengine: {r.n} HTTPS reals (TLS 1.3 tickets), checkinterval 1: {r.rate:.0f} checks/s, "
          f"{r.cpu_us:.0f} us CPU per check, {r.cpu_share * 100:.0f} % of one core, lateness p99 "
          f"{r.lateness_p99_ms:.1f} ms (max {r.lateness_max_ms:.0f} ms), {r.resumed_share * 100:.1f} % "
          f"resumed, "
          f"{r.shed} ticks shed, {r.down} reals not up at the end, peak RSS {r.rss_mb:.0f} MB; load average "
          f"{' '.join(f'{x:.1f}' for x in r.load)}")
    print(f"  one core at this cost: {1e6 / r.cpu_us:.0f} checks/s; {r.n} full handshakes a second at the "
          f"reference cost would take {r.n * PREVIOUS_FULL_US / 1e6:.1f} cores")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench tls", description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=1500, help="checks per row and round (default 1500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is shown (default 3)")
    parser.add_argument("--concurrency", type=int, default=50, help="checks in flight (default 50)")
    parser.add_argument("--addresses", type=int, default=200, help="loopback addresses = reals (default 200)")
    parser.add_argument("--engine-reals", type=int, default=2000, help="HTTPS reals for the engine run "
                                                                       "(default 2000; 0: no engine run)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds the engine run is measured "
                                                                   "(default 20)")
    args = parser.parse_args(argv)
    if min(args.checks, args.rounds, args.concurrency, args.addresses) < 1 or args.engine_reals < 0:
        parser.error("--checks, --rounds, --concurrency and --addresses must be positive")
    if args.addresses > 2000 or args.engine_reals > 10000:
        parser.error("--addresses: at most 2000; --engine-reals: at most 10000")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import trustme  # noqa: F401
    except ImportError:
        print("bench tls: trustme is not installed (./run setup installs the test extra)", file=sys.stderr)
        return 1
    ca_file = f"/tmp/healthd-bench-tls-ca-{os.getpid()}.pem"
    material_file = f"/tmp/healthd-bench-tls-server-{os.getpid()}.pem"  # the in-memory floor's server
    material = _material(ca_file)
    print(f"healthd tls bench: {os.cpu_count()} CPUs, {ssl.OPENSSL_VERSION}, Python {sys.version.split()[0]}")
    try:
        load = os.getloadavg()
        with nginx(loopback_addresses(args.addresses), KINDS, True, material):
            Path(material_file).write_bytes(material[0] + material[1])
            rows = asyncio.run(_rows(args, ca_file, material_file))
        _report(rows, args, load)
        sys.stdout.flush()
        if args.engine_reals:
            engine_addresses = loopback_addresses(args.engine_reals, first_octet=78)
            with nginx(engine_addresses, {TICKETS: KINDS[TICKETS]}, False, material):
                result = asyncio.run(asyncio.wait_for(_engine(args.engine_reals, args.window, ca_file),
                                                      args.window + 60))
            _report_engine(result)
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"bench tls: {exc}", file=sys.stderr)
        return 1
    finally:
        for path in (ca_file, material_file):
            with contextlib.suppress(OSError):
                os.unlink(path)
    if any(r.failed for r in rows):
        print("warning: some checks failed; the figures include failures", file=sys.stderr)
    return 0
