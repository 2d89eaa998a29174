"""CheckRunner: dispatch by type and service, the deadline, and never raising."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest

from healthd.checks.context import CheckContext
from healthd.checks.runner import CheckRunner
from healthd.checks.services import SERVICE_MODULES, SUPPORTED_SERVICES
from healthd.checks.spec import KNOWN_SERVICES, CheckSpec, CheckType, Outcome
from healthd.vocab import ServiceProtocol

HTTP = CheckSpec(type=CheckType.NEGOTIATE, service="http", protocol=ServiceProtocol.TCP, family=4,
                 address="127.0.0.1", port=9, scheme="http", negotiatetimeout=0.3, checktimeout=0.2)


async def test_on_and_service_none_are_up_without_io() -> None:
    runner = CheckRunner()
    assert (await runner.run(replace(HTTP, type=CheckType.ON))).ok
    assert (await runner.run(replace(HTTP, service="none"))).ok


async def test_off_is_never_up() -> None:
    outcome = await CheckRunner().run(replace(HTTP, type=CheckType.OFF))
    assert not outcome.ok and "off" in outcome.detail


async def test_unsupported_service_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SERVICE_MODULES, "radius", "no_such_check_module")
    outcome = await CheckRunner().run(replace(HTTP, service="radius"))
    assert not outcome.ok and outcome.detail == "service radius is not supported yet"


def test_every_known_service_has_a_module_or_is_none() -> None:
    assert KNOWN_SERVICES - set(SERVICE_MODULES) == {"none"}
    assert SUPPORTED_SERVICES <= KNOWN_SERVICES


async def test_start_loads_every_supported_module() -> None:
    runner = CheckRunner()
    await runner.start()
    assert {"http", "simpletcp", "connect", "ping", "external"} <= set(runner._fns)
    await runner.close()


async def test_deadline_is_enforced_by_cancelling() -> None:
    cancelled = asyncio.Event()

    async def hang(spec: CheckSpec, ctx: CheckContext) -> Outcome:
        try:
            await asyncio.sleep(60)
        finally:
            cancelled.set()
        raise AssertionError("not reached")

    runner = CheckRunner()
    runner._fns["http"] = hang
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    outcome = await runner.run(HTTP)
    elapsed = loop.time() - t0
    assert not outcome.ok and outcome.detail == "timed out after 0.3 s"
    assert 0.25 < elapsed < 1.0
    assert cancelled.is_set()


async def test_connect_runs_use_checktimeout() -> None:
    async def hang(spec: CheckSpec, ctx: CheckContext) -> Outcome:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    runner = CheckRunner()
    runner._fns["connect"] = hang
    outcome = await runner.run(replace(HTTP, type=CheckType.CONNECT, service="none"))
    assert outcome.detail == "timed out after 0.2 s"


async def test_a_crashing_module_becomes_a_failed_outcome() -> None:
    async def crash(spec: CheckSpec, ctx: CheckContext) -> Outcome:
        raise KeyError("bug")

    runner = CheckRunner()
    runner._fns["http"] = crash
    outcome = await runner.run(HTTP)
    assert not outcome.ok and "KeyError" in outcome.detail


async def test_cancellation_from_outside_propagates() -> None:
    async def hang(spec: CheckSpec, ctx: CheckContext) -> Outcome:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    runner = CheckRunner()
    runner._fns["http"] = hang
    task = asyncio.ensure_future(runner.run(replace(HTTP, negotiatetimeout=30)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_module_that_swallows_cancellation_still_times_out() -> None:
    async def stubborn(spec: CheckSpec, ctx: CheckContext) -> Outcome:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        return Outcome(True, "pretends to be fine", 0.0)

    runner = CheckRunner()
    runner._fns["http"] = stubborn
    outcome = await runner.run(HTTP)
    assert not outcome.ok and outcome.detail == "timed out after 0.3 s"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # no cancellation left pending on the caller
    await asyncio.sleep(0)  # and none is delivered later


async def test_a_finished_run_is_never_cancelled_later() -> None:
    runner = CheckRunner()
    outcome = await runner.run(replace(HTTP, service="none", negotiatetimeout=0.05))
    assert outcome.ok
    await asyncio.sleep(0.15)  # past the deadline's slot: this task must not be cancelled
    assert len(runner._deadlines) == 0
