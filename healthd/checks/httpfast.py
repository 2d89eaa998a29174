"""Plain HTTP checks without a task: readiness callbacks run the check and hand its verdict to a callback.

The engine's scheduler starts 10,000 checks a second. Through CheckRunner.run each
one costs an asyncio Task, a Future, four coroutine frames and two trips through
the event loop's ready queue, which is more CPU than the check's own socket work
on loopback. A plain HTTP check (no TLS) needs none of it: here it is one _Run
object. The scheduler's tick creates the socket, connects and sends the request
(FastHttp.launch); the private epoll (healthd.checks.poller) calls the run back
when the answer is there; the run judges it and calls `done(token, outcome)`.
Its deadline is one entry in the runner's 10 ms slots (healthd.checks.deadlines).

What the check sends, reads and says is healthd.checks.http's: the same request
bytes (built once per identity here), the same parser (after
httpparse.whole_response, which reads the usual one-segment answer in a few bytes
methods), the same judgement and failure sentences. A redirect (rare) is followed
by http.conclude in a task, under the same deadline. Syscalls per check: socket,
setsockopt (SO_LINGER 0: close sends an RST), connect, send, epoll_ctl ADD, recv,
close; no epoll_ctl DEL, since closing the socket takes it out of the epoll set.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import os
import re
import select
import socket
from collections.abc import Callable

from healthd.checks import failures, http
from healthd.checks.context import CheckContext
from healthd.checks.deadlines import Deadlines
from healthd.checks.httpparse import ResponseParser, whole_response
from healthd.checks.receive import BadPattern, compiled
from healthd.checks.redirect import REDIRECT_STATUSES
from healthd.checks.sockets import LINGER_RST
from healthd.checks.spec import CheckSpec, CheckType, Outcome

log = logging.getLogger(__name__)

Done = Callable[[object, Outcome], None]  # done(token, outcome)

_READ = select.EPOLLIN
_READ_WRITE = select.EPOLLIN | select.EPOLLOUT
_WRITE = select.EPOLLOUT
_READ_OR_ERROR = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
_SOL_SOCKET, _SO_LINGER = socket.SOL_SOCKET, socket.SO_LINGER
# connect_ex answers for a handshake under way (the non-blocking socket's usual answer)
_SERVICES = frozenset({"http", "http_proxy"})  # https: TLS, http.check's
_IN_PROGRESS = frozenset({0, errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY, errno.EINTR})


def plan(spec: CheckSpec, ctx: CheckContext, deadlines: Deadlines) -> FastHttp | None:
    """The task-free check of `spec`, or None when it needs http.check (TLS, or a request or
    pattern that fails: http.check says why, once per run)."""
    if spec.type is not CheckType.NEGOTIATE or spec.scheme != "http" or spec.service not in _SERVICES:
        return None
    try:
        pattern = compiled(spec.receive_re) if spec.receive_re is not None else None
        request = http.build_request(spec)
    except (BadPattern, ValueError):
        return None
    target, host = http.request_target(spec)
    return FastHttp(spec, ctx, deadlines, pattern, request, target, host)


class FastHttp:
    """Everything one identity's runs share, worked out once: where, what to send, how to judge.
    Made and launched on one event loop, the running one when it is made."""

    __slots__ = ("address", "body_limit", "ctx", "deadline", "deadlines", "decide_on_status", "family",
                 "head_only", "host", "loop", "pattern", "request", "spec", "target")

    def __init__(self, spec: CheckSpec, ctx: CheckContext, deadlines: Deadlines,
                 pattern: re.Pattern[str] | None, request: bytes, target: str, host: str) -> None:
        self.spec = spec
        self.ctx = ctx
        self.deadlines = deadlines
        self.pattern = pattern
        self.request = request
        self.target, self.host = target, host
        self.address = (spec.address, spec.port)
        self.family = socket.AF_INET6 if spec.family == 6 else socket.AF_INET
        self.deadline = spec.deadline
        self.head_only = spec.httpmethod.upper() == "HEAD"
        self.decide_on_status = pattern is None  # no receive: the status line decides
        self.body_limit = ctx.body_limit
        # asyncio.get_running_loop() makes a getpid() system call each time (its fork check):
        # once here rather than once per run
        self.loop = asyncio.get_running_loop()

    def launch(self, done: Done, token: object) -> _Run:
        """Start one run; `done(token, outcome)` is called once with its verdict, never before
        launch returns, and never if the run is cancelled first (run.cancel())."""
        return _Run(self, done, token)


class _Run:
    """One run: a non-blocking socket watched through ctx.poller, and the verdict's way back.
    Creating it starts it (socket, connect, send, watch)."""

    __slots__ = ("_loop", "_on_done", "_out", "_parser", "_plan", "_sock", "_started", "_task", "_token",
                 "_watched", "done", "fd")

    def __init__(self, plan: FastHttp, on_done: Done, token: object) -> None:
        self._plan = plan
        self._on_done = on_done
        self._token = token
        self._loop = plan.loop
        self._started = self._loop.time()
        self._sock: _socket.socket | None = None
        self._parser: ResponseParser | None = None
        self._out = b""
        self._task: asyncio.Task[Outcome] | None = None
        self._watched = False
        self.fd = -1
        self.done = False  # a verdict was given (or the run was cancelled): read by the deadline slots
        plan.deadlines.watch(self._loop, self, self._started + plan.deadline)
        self._start()

    def _start(self) -> None:
        plan = self._plan
        loop = self._loop
        try:
            # the C socket type itself: socket.socket's Python __init__ and close() add nothing here
            sock = self._sock = _socket.socket(plan.family, _STREAM)
            sock.setsockopt(_SOL_SOCKET, _SO_LINGER, LINGER_RST)
        except OSError as exc:  # out of descriptors: what CheckRunner.run says of a raising module
            log.error("check of %s (%s/%s) crashed: %s", plan.spec.target, plan.spec.type,
                      plan.spec.service, exc)
            loop.call_soon(self._finish, Outcome(False, failures.crashed(exc), 0.0))
            return
        code = sock.connect_ex(plan.address)
        if code not in _IN_PROGRESS:
            loop.call_soon(self._fail, OSError(code, os.strerror(code)))
            return
        try:
            sent = sock.send(plan.request)  # a failed connect reports its error here
        except (BlockingIOError, InterruptedError):
            sent = 0  # still connecting: sent when writable
        except OSError as exc:
            loop.call_soon(self._fail, exc)
            return
        self.fd = sock.fileno()
        if sent != len(plan.request):
            self._out = plan.request[sent:]
        try:
            plan.ctx.poller.watch(self.fd, _READ_WRITE if self._out else _READ, self._on_event)
        except OSError as exc:  # epoll refused it (out of memory, or its watch limit)
            loop.call_soon(self._fail, exc)
            return
        self._watched = True

    # -- events -----------------------------------------------------------------------------

    def _on_event(self, events: int) -> None:
        if self.done:
            return
        try:
            if events & _WRITE and self._out:
                self._send_rest()
            if events & _READ_OR_ERROR and not self.done:
                self._receive()
        except Exception as exc:  # a bug here must still end in a verdict, as CheckRunner.run's do
            log.exception("check of %s crashed", self._plan.spec.target)
            self._finish(Outcome(False, failures.crashed(exc), self._loop.time() - self._started))

    def _send_rest(self) -> None:
        assert self._sock is not None
        try:
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        self._out = self._out[sent:]
        if not self._out:
            self._plan.ctx.poller.watch(self.fd, _READ, self._on_event)

    def _receive(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        plan = self._plan
        parser = self._parser
        if parser is None:
            if data and not plan.head_only:
                whole = whole_response(data, plan.body_limit)
                if whole is not None:
                    status, reason, body = whole
                    self._finish(http.judge(status, reason, "", body, False, plan.pattern,
                                            self._loop.time() - self._started))
                    return
            parser = self._parser = ResponseParser(head_only=plan.head_only, body_limit=plan.body_limit)
        if not data:
            parser.feed_eof()
        else:
            if http.wants_more(parser.feed(data), parser, plan.decide_on_status):
                return
        if parser.status in REDIRECT_STATUSES:
            self._follow(parser)
            return
        self._finish(http.judge_parsed(parser, plan.pattern, self._loop.time() - self._started))

    def _follow(self, parser: ResponseParser) -> None:
        """A redirect: http.conclude follows it in a task; this run stays its deadline's owner."""
        self._close()
        plan = self._plan
        self._task = task = self._loop.create_task(
            http.conclude(plan.spec, plan.ctx, parser, plan.pattern, plan.target, plan.host, self._started))
        task.add_done_callback(self._followed)

    def _followed(self, task: asyncio.Task[Outcome]) -> None:
        if self.done or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("check of %s crashed", self._plan.spec.target, exc_info=exc)
            self._finish(Outcome(False, failures.crashed(exc), self._loop.time() - self._started))
        else:
            self._finish(task.result())

    # -- endings ----------------------------------------------------------------------------

    def _fail(self, exc: OSError) -> None:
        self._finish(Outcome(False, failures.of_exception(exc), self._loop.time() - self._started))

    def _finish(self, outcome: Outcome) -> None:
        if self.done:
            return
        self.done = True
        self._close()
        self._on_done(self._token, outcome)

    def expire(self) -> None:
        """The deadline passed (healthd.checks.deadlines): the verdict is `timed out`."""
        if self._task is not None:
            self._task.cancel()
        latency = self._loop.time() - self._started
        self._finish(Outcome(False, failures.timed_out(self._plan.deadline), latency))

    def cancel(self) -> None:
        """Abandon the run: no verdict (the schedule was stopped)."""
        if not self.done:
            self.done = True
            if self._task is not None:
                self._task.cancel()
            self._close()

    def _close(self) -> None:
        sock = self._sock
        if sock is not None:
            self._sock = None
            if self._watched:
                self._watched = False
                self._plan.ctx.poller.drop(self.fd)
            sock.close()  # an RST (SO_LINGER 0); the kernel takes it out of the epoll set
