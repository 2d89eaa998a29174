"""Worker threads that leave SIGTERM, SIGINT and SIGHUP to the main thread.

A process-wide signal goes to any thread that does not block it. While the event loop's handler
is installed that is harmless; but when the daemon hands its handlers back on the way out, the
default action (death) would apply for an instant, and a signal taken by a worker thread then kills
a process that is exiting cleanly. Every thread healthd starts blocks these signals, so the main
thread alone decides what they do (see `daemon.lifecycle.release_signals`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


def block_stop_signals() -> None:
    """Block the stop and reload signals in the calling thread."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def pool(workers: int | None, name: str) -> ThreadPoolExecutor:
    """A thread pool whose threads leave the stop and reload signals to the main thread."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=block_stop_signals)


def start_daemon_thread(target: Callable[[], None], name: str) -> None:
    """A daemon thread running `target` with the stop and reload signals blocked."""

    def run() -> None:
        block_stop_signals()
        target()

    threading.Thread(target=run, name=name, daemon=True).start()
