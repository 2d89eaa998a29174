"""SMTP servers that misbehave, in a process of their own so that their work never loads the loop under test.

    python -m tests.integration.alerts.hostile_smtp silent|dripping|flooding

prints the port it listens on (127.0.0.1), then serves until killed:
silent accepts and never sends a byte; dripping greets one byte every 0.2 s with a
multi-line reply that never ends; flooding sends an endless multi-line greeting
as fast as the socket takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up


async def dripping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            for byte in b"220-slow\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)


async def flooding(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            writer.write(b"220-" + b"x" * 1000 + b"\r\n")
            await writer.drain()


async def main(kind: str) -> None:
    handler = {"silent": silent, "dripping": dripping, "flooding": flooding}[kind]
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
