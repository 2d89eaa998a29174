"""Run a coroutine in a thread that lives in a private network namespace of its own.

Inside, loopback is up and nftables (the namespace's own ruleset, gone with it)
drops echo requests to SILENT_V4 and SILENT_V6: addresses that exist but never
answer a ping, without touching the host's network. Needs root.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

SILENT_V4 = "127.0.0.77"
SILENT_V6 = "fd00:4865:616c::77"
_CLONE_NEWNET = 0x40000000

_SETUP = f"""
ip link set lo up
ip -6 addr add {SILENT_V6}/128 dev lo nodad
nft add table inet healthd_test
nft add chain inet healthd_test input '{{ type filter hook input priority 0; }}'
nft add rule inet healthd_test input ip daddr {SILENT_V4} icmp type echo-request drop
nft add rule inet healthd_test input ip6 daddr {SILENT_V6} icmpv6 type echo-request drop
"""


def run_in_private_netns(make: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    """asyncio.run(make()) in a fresh network namespace; returns its result or raises its error."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            # a network namespace is per thread: only this thread (and what it forks) moves
            if libc.unshare(_CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
            subprocess.run(["sh", "-e", "-c", _SETUP], check=True, capture_output=True)
            box["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="private-netns")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"private-netns run still going after {timeout} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
