"""The one entry point the engine uses to run a check: CheckRunner.run(spec) -> Outcome.

Contract (every check module follows it):
- A negotiate module `healthd/checks/<name>.py` exposes
  `async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome`.
  It may assume spec.type is NEGOTIATE and spec.service is one it serves; it should
  turn what a real server does (refuse, reset, garbage) into Outcome(ok=False, ...)
  itself, with a one-line detail, but it need not handle its own deadline.
- run() never raises for anything a real server does; every failure is an Outcome
  with ok=False and a one-line detail. Even a bug in a module (an unexpected
  exception) becomes a failed Outcome naming the exception, not a crash.
- run() returns within spec.deadline (+ at most one 10 ms slot, healthd.checks.deadlines):
  the deadline is enforced here, by cancelling the module's coroutine, not trusted to
  the protocol code. A module must therefore clean up (close sockets, kill processes)
  when cancelled.
- Shared resources (TLS contexts, the ICMP sockets, the epoll that watches check
  sockets: ctx.poller) live in the CheckContext owned by the runner, opened on first
  use and released by close(), never one per check. A module on a hot path should
  watch its sockets with ctx.poller rather than loop.add_reader (see healthd.checks.http).
- Only asyncio.CancelledError from *outside* (the engine cancelling the run) leaves run().
- fast(spec) offers the same check without a task where one is written that way
  (healthd.checks.httpfast: plain HTTP); the scheduler uses it, else run(). It keeps
  run()'s promises: a verdict within the deadline, never an exception, the same words.
- run() does not limit concurrency: every check in flight holds one file descriptor
  (a socket, or an external command's pipe), so the engine bounds how many run at once
  and the daemon raises RLIMIT_NOFILE above that bound.

Check types, as ldirectord means them:
- negotiate: the service's module (SERVICE_MODULES); service "none" is always up.
- connect: a TCP connection within checktimeout; for a UDP virtual, ping (as ldirectord).
- ping: ICMP echo (IPv4 or IPv6), checkcount attempts within checktimeout.
- external / external-perl: healthd.checks.external.
- on: always up, nothing is sent.
- off: ldirectord's "no checking, and no real or fallback server is activated".
  The engine should never schedule an `off` check: its reals are never given traffic
  (not even quiesced at weight 0) and no fallback is added for that virtual. If run()
  is called anyway it answers down ("checktype off") without touching the network.
- numeric checktype N (spec.type NEGOTIATE, spec.connect_every = N): the engine runs
  the negotiate check, then N connect checks, then a negotiate again, and so on. For a
  connect run it passes `dataclasses.replace(spec, type=CheckType.CONNECT)`; run() always
  does what spec.type says, and the deadline follows the type (checktimeout for connect).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from healthd.checks import failures, httpfast, optional
from healthd.checks.context import CheckContext
from healthd.checks.deadlines import Deadlines
from healthd.checks.services import SERVICE_MODULES, SUPPORTED_SERVICES
from healthd.checks.spec import CheckSpec, CheckType, Outcome

log = logging.getLogger(__name__)

CheckFn = Callable[[CheckSpec, CheckContext], Awaitable[Outcome]]


# check type -> module, for the types that do not depend on the service
_TYPE_MODULES: dict[CheckType, str] = {
    CheckType.CONNECT: "connect",
    CheckType.PING: "ping",
    CheckType.EXTERNAL: "external",
    CheckType.EXTERNAL_PERL: "external",
}


async def _always_up(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    return Outcome(True, "checktype on" if spec.type is CheckType.ON else "service none", 0.0)


async def _never_checked(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    return Outcome(False, "checktype off: not checked, never given traffic", 0.0)


class CheckRunner:
    """Runs checks; one instance per daemon."""

    def __init__(self, ctx: CheckContext | None = None) -> None:
        self.ctx = ctx or CheckContext()
        self._fns: dict[str, CheckFn] = {}
        self._missing: dict[str, str] = {}  # module -> the optional library it lacks
        self._told: set[str] = set()  # modules whose missing library was logged already
        self._deadlines = Deadlines()

    async def start(self, services: Iterable[str] | None = None) -> None:
        """Load the check modules, so the first checks pay no import: those of `services` (the
        configuration's) or of every supported service. A service's module is loaded when a reload
        brings it; loading them all costs ~1.5 s of CPU (database and LDAP drivers), 20-30 s in the
        emulated test VM, for services most directors never check."""
        self.ctx.tls.prepare()
        wanted = SUPPORTED_SERVICES if services is None else set(services)
        for name in {*_TYPE_MODULES.values(), *(SERVICE_MODULES[s] for s in wanted if s in SERVICE_MODULES)}:
            self._module_fn(name)

    async def close(self) -> None:
        """Release shared resources and finish background work (killing overdue commands)."""
        await self.ctx.close()

    def _module_fn(self, name: str) -> CheckFn | None:
        fn = self._fns.get(name)
        if fn is None:
            try:
                module = importlib.import_module(f"healthd.checks.{name}")
            except ModuleNotFoundError as exc:
                if optional.is_optional(exc.name):  # a per-service library left out: see _resolve
                    self._missing[name] = exc.name or ""
                    return None
                if exc.name != f"healthd.checks.{name}":
                    raise  # the module exists but lacks a core dependency: say so loudly
                return None
            fn = module.check
            self._fns[name] = fn
        return fn

    def _resolve(self, spec: CheckSpec) -> CheckFn | str:
        """The function that runs `spec`, or why none can."""
        kind = spec.type
        if kind is CheckType.NEGOTIATE:
            if spec.service == "none":
                return _always_up
            name = SERVICE_MODULES.get(spec.service)
        elif kind is CheckType.ON:
            return _always_up
        elif kind is CheckType.OFF:
            return _never_checked
        else:
            name = _TYPE_MODULES.get(kind)
        fn = self._module_fn(name) if name else None
        if fn is None:
            if name in self._missing:
                reason = optional.missing(self._missing[name], spec.service)
                if name not in self._told:
                    self._told.add(name)
                    log.error("%s", reason)
                return reason
            return f"service {spec.service} is not supported yet"
        return fn

    def fast(self, spec: CheckSpec) -> httpfast.FastHttp | None:
        """The task-free form of `spec`'s check (plain HTTP), for the scheduler's hot path; None if
        `spec` has none: then run() it. Build it once per identity: it prepares the request."""
        return httpfast.plan(spec, self.ctx, self._deadlines)

    async def run(self, spec: CheckSpec) -> Outcome:
        """Run one check of `spec` within spec.deadline. Never raises (except CancelledError from outside)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        fn = self._resolve(spec)
        if isinstance(fn, str):
            return Outcome(False, fn, 0.0)
        deadline = spec.deadline
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        # what asyncio.timeout() does, with a cheaper timer (see healthd.checks.deadlines)
        entry = self._deadlines.add(loop, task, started + deadline)  # type: ignore[arg-type]
        try:
            outcome = await fn(spec, self.ctx)
        except asyncio.CancelledError:
            if entry.expired and task.uncancel() <= cancelling:
                return Outcome(False, failures.timed_out(deadline), loop.time() - started)
            raise
        except Exception as exc:  # a module's bug must not take the engine down
            log.exception("check of %s (%s/%s) crashed", spec.target, spec.type, spec.service)
            return Outcome(False, failures.crashed(exc), loop.time() - started)
        finally:
            entry.done = True
        if entry.expired:  # the module swallowed the cancellation: the deadline still stands
            task.uncancel()
            return Outcome(False, failures.timed_out(deadline), loop.time() - started)
        return outcome
