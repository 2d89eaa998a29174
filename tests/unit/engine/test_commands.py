"""fallbackcommand runs: arguments as ldirectord passes them, no shell, bounded time and output."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from healthd.engine.commands import CommandQueue, fallback_argv
from healthd.process import OUTPUT_LIMIT, run_process
from healthd.vocab import ServiceProtocol

from .fakes import fwm_virtual, virtual


def script(tmp_path: Path, body: str, name: str = "cmd") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize(("v", "action", "tail"), [
    (virtual("10.0.0.1", 80), "start", ["start", "10.0.0.1:80", "tcp"]),
    (virtual("10.0.0.1", 53, protocol=ServiceProtocol.UDP), "stop", ["stop", "10.0.0.1:53", "udp"]),
    (virtual("2001:db8::1", 443), "start", ["start", "[2001:db8::1]:443", "tcp"]),
    (fwm_virtual(99), "stop", ["stop", "99", "fwm"]),
])
def test_argv(v, action, tail) -> None:  # type: ignore[no-untyped-def]
    assert fallback_argv("/usr/local/bin/fb 'a b' -x", action, v) == ["/usr/local/bin/fb", "a b", "-x", *tail]


def test_unbalanced_quote_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        fallback_argv("/bin/fb 'oops", "start", virtual())


async def test_runs_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "args"
    cmd = script(tmp_path, f'printf "%s\\n" "$@" > {out}; echo done\n')
    # `;` and `$HOME` reach the program as plain words: nothing interprets them
    result = await run_process([cmd, "a;b", "$HOME"], 5)
    assert result.returncode == 0 and result.error is None and result.output == "done\n"
    assert out.read_text().splitlines() == ["a;b", "$HOME"]


async def test_timeout_terminates_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    cmd = script(tmp_path, f"sleep 30 & echo $! > {pidfile}; wait\n")
    t0 = asyncio.get_running_loop().time()
    result = await run_process([cmd], 0.5, kill_grace=0.5)
    assert asyncio.get_running_loop().time() - t0 < 3
    assert result.returncode is None and "terminated" in (result.error or "")
    child = int(pidfile.read_text())
    await asyncio.sleep(0.2)
    assert not alive(child)  # the grandchild died with its group


def alive(pid: int) -> bool:
    """Running, not a zombie left for an init that does not reap (containers)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


async def test_output_is_bounded(tmp_path: Path) -> None:
    cmd = script(tmp_path, "head -c 1000000 /dev/zero | tr '\\0' x\n")
    result = await run_process([cmd], 5)
    assert result.returncode == 0 and len(result.output) == OUTPUT_LIMIT


async def test_missing_program_is_reported_not_raised(tmp_path: Path) -> None:
    result = await run_process([str(tmp_path / "nope")], 5)
    assert result.returncode is None and "cannot run" in (result.error or "")


async def test_queue_keeps_order_per_virtual(tmp_path: Path) -> None:
    log = tmp_path / "log"
    slow = script(tmp_path, f"sleep 0.3; echo \"$1\" >> {log}\n", "slow")
    fast = script(tmp_path, f"echo \"$1\" >> {log}\n", "fast")
    queue = CommandQueue(timeout=5)
    queue.submit("v1", [slow, "start"])
    queue.submit("v1", [fast, "stop"])
    await queue.drain(5)
    assert log.read_text().splitlines() == ["start", "stop"]
