"""`python -m tests.integration.web.farm PORT ADDRESS...`: loopback web servers in a process of their own.

The hostile-client test runs its attackers in the test process; the reals must not
share that process's event loop, or a busy attacker would slow the reals' answers
and look like healthd falling behind.
"""

from __future__ import annotations

import asyncio
import sys

from tests.integration.daemon.helpers import TinyWebFarm


async def serve(port: int, addresses: list[str]) -> None:
    farm = await TinyWebFarm(addresses, port).start()
    print("ready", flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    finally:
        await farm.stop()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2:]))
