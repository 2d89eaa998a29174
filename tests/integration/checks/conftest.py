"""Shared helpers for the check tests: a runner, TLS material, and the 'hostile neighbour' harness."""

from __future__ import annotations

import asyncio
import ssl
import statistics
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest
import trustme

from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec, CheckType, Outcome
from healthd.vocab import ServiceProtocol


def http_spec(port: int, address: str = "127.0.0.1", **kw: object) -> CheckSpec:
    base = CheckSpec(type=CheckType.NEGOTIATE, service="http", protocol=ServiceProtocol.TCP,
                     family=6 if ":" in address else 4, address=address, port=port, scheme="http",
                     negotiatetimeout=2.0, checktimeout=2.0)
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def runner() -> AsyncIterator[CheckRunner]:
    r = CheckRunner()
    await r.start()
    yield r
    await r.close()


class FastPathRunner(CheckRunner):
    """run() as the engine's scheduler runs a check: through CheckRunner.fast (no task: plain
    HTTP, healthd.checks.httpfast) where the spec has that form, else as CheckRunner.run."""

    def __init__(self) -> None:
        super().__init__()
        self.fast_runs = 0

    async def run(self, spec: CheckSpec) -> Outcome:
        fast = self.fast(spec)
        if fast is None:
            return await super().run(spec)
        self.fast_runs += 1
        verdict: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        run = fast.launch(lambda _token, outcome: verdict.set_result(outcome), None)
        assert not verdict.done()  # never before launch returns: the scheduler relies on it
        try:
            return await verdict
        except asyncio.CancelledError:
            run.cancel()
            raise


@pytest.fixture(params=["task", "fast"])
async def either_runner(request: pytest.FixtureRequest) -> AsyncIterator[CheckRunner]:
    """Both ways a check runs: CheckRunner.run (a task) and the scheduler's task-free path
    (HTTPS has none: the "fast" runner runs it as a task, as the scheduler does)."""
    r = CheckRunner() if request.param == "task" else FastPathRunner()
    await r.start()
    yield r
    await r.close()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test CA as a PEM file, for tlscafile."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("www.example.org", "127.0.0.1").configure_cert(ctx)
    return ctx


@dataclass
class Neighbourhood:
    """What happened to healthy checks that ran while hostile ones were in flight."""

    hostile: list[Outcome]
    healthy: list[Outcome]
    lateness: list[float] = field(default_factory=list)  # seconds each healthy check started late
    peak_bytes: int = 0  # tracemalloc peak over the whole run

    def assert_unharmed(self, deadline: float, period: float) -> None:
        """Hostile checks failed by their deadline; healthy ones all passed, on time, all along."""
        assert self.hostile and not any(o.ok for o in self.hostile), self.hostile[:3]
        slowest = max(o.latency for o in self.hostile)
        assert slowest < deadline + 1.0, slowest
        assert all(o.ok for o in self.healthy), [o for o in self.healthy if not o.ok][:3]
        # healthy checks kept their rhythm for as long as the hostile ones were running
        assert len(self.healthy) >= int(slowest / period * 0.5), (len(self.healthy), slowest)
        assert max(o.latency for o in self.healthy) < 0.5
        assert statistics.median(self.lateness) < 0.05 and max(self.lateness) < 0.3, max(self.lateness)


async def alongside(runner: CheckRunner, hostile: CheckSpec, healthy: CheckSpec, *, copies: int = 20,
                    period: float = 0.02, at_least: float = 0.5, memory: bool = True) -> Neighbourhood:
    """Run `copies` hostile checks at once while a healthy check runs every `period` seconds.

    The healthy checks keep going until every hostile check has answered (and for
    `at_least` seconds), so they cover the whole time the hostile server is being checked.
    """
    loop = asyncio.get_running_loop()
    if memory:
        tracemalloc.start()
    try:
        hostile_tasks = [asyncio.ensure_future(runner.run(hostile)) for _ in range(copies)]
        healthy_outcomes: list[Outcome] = []
        lateness: list[float] = []
        start = loop.time()
        tick = 0
        while (not all(t.done() for t in hostile_tasks) or loop.time() - start < at_least) \
                and tick < 10_000:
            due = start + tick * period
            await asyncio.sleep(max(0.0, due - loop.time()))
            lateness.append(loop.time() - due)
            healthy_outcomes.append(await runner.run(healthy))
            tick += 1
        hostile_outcomes = [await t for t in hostile_tasks]
        peak = tracemalloc.get_traced_memory()[1] if memory else 0
    finally:
        if memory:
            tracemalloc.stop()
    return Neighbourhood(hostile_outcomes, healthy_outcomes, lateness, peak)
