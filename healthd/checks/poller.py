"""Readiness of many short-lived check sockets through one epoll of our own, itself watched by the loop.

asyncio's add_reader/remove_reader do a lot of bookkeeping per call (transport
checks, selector keys, a Handle, a KeyError raised and caught for every new fd):
for a socket that lives a millisecond that is a large share of a check's cost. Here
each check socket is registered with a private epoll instance (one C call); the
event loop watches only that epoll's descriptor and hands the ready sockets to their
handlers in a batch. Level-triggered, so nothing is lost when a batch is cut short.
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Callable

log = logging.getLogger(__name__)

READ = select.EPOLLIN
WRITE = select.EPOLLOUT
_BATCH = 1024  # events fetched per epoll call
_ROUNDS = 8  # epoll calls per wake-up at most; what is still ready waits for the next loop iteration

Handler = Callable[[int], None]  # called with the epoll event mask


class Poller:
    """watch(fd, mask, handler) / forget(fd); opened on first use, closed by close()."""

    def __init__(self) -> None:
        self._ep: select.epoll | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[int, Handler] = {}
        self.wakeups = 0  # batches dispatched (benchmarks: event-loop wake-ups for check sockets)

    def watch(self, fd: int, mask: int, handler: Handler) -> None:
        """Call handler(events) whenever `fd` is ready for `mask` (READ, WRITE or both)."""
        ep = self._ep
        if ep is None:
            ep = self._open()
        if fd in self._handlers:
            ep.modify(fd, mask)
        else:
            ep.register(fd, mask)
        self._handlers[fd] = handler

    def forget(self, fd: int) -> None:
        """Stop watching `fd` (call before closing it)."""
        if self._handlers.pop(fd, None) is not None and self._ep is not None:
            try:  # noqa: SIM105 - hot path: a plain try is cheaper than contextlib.suppress
                self._ep.unregister(fd)
            except OSError:
                pass  # already closed: the kernel dropped it

    def drop(self, fd: int) -> None:
        """Stop watching `fd`, which the caller closes right away: closing a descriptor takes it
        out of the epoll set (none of ours is duplicated), so this saves forget()'s epoll_ctl."""
        self._handlers.pop(fd, None)

    def _open(self) -> select.epoll:
        self._loop = asyncio.get_running_loop()
        self._ep = select.epoll()
        self._loop.add_reader(self._ep.fileno(), self._dispatch)
        return self._ep

    def _dispatch(self) -> None:
        assert self._ep is not None
        handlers = self._handlers
        self.wakeups += 1
        # Answers first: on a starved machine the loop may wake only a few times a second, and
        # an answer left waiting past its check's deadline becomes a false "timed out". So a
        # full batch is followed by another, up to _ROUNDS; the rest waits for the next wake-up.
        for _ in range(_ROUNDS):
            ready = self._ep.poll(0, _BATCH)
            for fd, events in ready:
                handler = handlers.get(fd)
                if handler is None:
                    continue
                try:
                    handler(events)
                except Exception:  # one check's bug must not starve the others of their events
                    log.exception("check socket handler failed")
                    self.forget(fd)
            if len(ready) < _BATCH or self._ep is None:
                return

    def __len__(self) -> int:
        return len(self._handlers)

    def close(self) -> None:
        if self._ep is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._ep.fileno())
            self._ep.close()
            self._ep = None
        self._handlers.clear()
