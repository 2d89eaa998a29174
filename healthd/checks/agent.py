"""The agent check (healthd extension `agentport`): a real server states its own weight or state in one line.

The protocol is the one HAProxy's agent-check made common: healthd connects to
the real's agent port, the agent writes one line and closes (or healthd stops
reading after the first line), e.g. `75%`, `drain`, `down`, `up`, `ready`,
`maint`, or a combination such as `50% ready`. Words are separated by spaces,
tabs or commas; `#` starts a comment; unknown words (`maxconn:30`) are ignored.
A line with no word healthd understands is no answer at all.

What an answer does to the table is policy's business (healthd.engine.safety):
here it is only read, with a bound on time (under the check's deadline) and on
size (MAX_LINE bytes), so a hostile or stuck agent costs nothing but its own
check.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
from dataclasses import dataclass

from healthd.checks.spec import CheckSpec

MAX_LINE = 512  # bytes read from an agent; a longer line is cut there
AGENT_DEADLINE = 2.0  # seconds an agent may take at most, whatever the check's deadline


class AgentState(enum.StrEnum):
    READY = "ready"  # `up` and `ready`: no restriction from the agent
    DRAIN = "drain"  # weight 0: existing connections finish, no new ones
    MAINT = "maint"  # leave the table, as a maintenancedir file does
    DOWN = "down"  # `down`, `fail`, `stopped`: as a failed health check


_STATE_WORDS = {
    "up": AgentState.READY, "ready": AgentState.READY, "drain": AgentState.DRAIN,
    "maint": AgentState.MAINT, "down": AgentState.DOWN, "fail": AgentState.DOWN,
    "stopped": AgentState.DOWN,
}
_PERCENT = re.compile(r"(\d{1,6})(?:\.\d+)?%")


@dataclass(frozen=True, slots=True)
class AgentReply:
    """What an agent said: a share of the configured weight (percent, None = not said) and a state."""

    percent: int | None = None
    state: AgentState | None = None

    def __str__(self) -> str:
        words = [f"{self.percent}%"] if self.percent is not None else []
        if self.state is not None:
            words.append(str(self.state))
        return " ".join(words)


def parse_agent_line(line: str) -> AgentReply | None:
    """One agent line -> what it says; None when it says nothing healthd understands.

    Later words win over earlier ones of the same kind (`drain up` is up); a
    percentage above 100 counts as 100, since an agent may only lower its share.
    """
    text = line.split("#", 1)[0]
    percent: int | None = None
    state: AgentState | None = None
    for word in re.split(r"[\s,]+", text.strip().lower()):
        match = _PERCENT.fullmatch(word)
        if match:
            percent = min(int(match.group(1)), 100)
        elif word in _STATE_WORDS:
            state = _STATE_WORDS[word]
    if percent is None and state is None:
        return None
    return AgentReply(percent, state)


async def query_agent(address: str, port: int, deadline: float) -> AgentReply | None:
    """Ask the agent at address:port for its line, within `deadline` (at most AGENT_DEADLINE) seconds.

    Any failure (refused, reset, silence, garbage) is None: a real whose agent does
    not answer keeps the verdict of its health check.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(min(deadline, AGENT_DEADLINE)):
            reader, writer = await asyncio.open_connection(address, port, limit=MAX_LINE * 2)
            data = b""
            while len(data) < MAX_LINE and b"\n" not in data:
                chunk = await reader.read(MAX_LINE - len(data))
                if not chunk:
                    break
                data += chunk
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.1)
    line = data.split(b"\n", 1)[0].decode("ascii", errors="replace")
    return parse_agent_line(line)


async def run_agent(spec: CheckSpec) -> AgentReply | None:
    """The agent of the real `spec` checks, on its agentport, under the check's deadline."""
    return await query_agent(spec.address, spec.agentport, spec.deadline)
