"""external and external-perl: arguments, exit status, the group killed on the deadline, bounded output."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

from healthd.checks.context import CheckContext
from healthd.checks.runner import CheckRunner
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol

ARGS = ("192.168.6.240", "80", "[2001:db8::2]", "8080")
BASE = CheckSpec(type=CheckType.EXTERNAL, service="none", protocol=ServiceProtocol.TCP,
                 family=4, address="127.0.0.1",
                 port=0, command_args=ARGS, checktimeout=2.0)


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


async def test_exit_zero_is_up_and_arguments_are_exact(runner: CheckRunner, tmp_path: Path) -> None:
    out = tmp_path / "args"
    cmd = script(tmp_path, "check.sh", f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {out}\necho fine\n')
    outcome = await runner.run(replace(BASE, command=cmd))
    assert outcome.ok and outcome.detail == "exit status 0: fine", outcome
    assert out.read_text().splitlines() == list(ARGS)


async def test_nonzero_exit_is_down_with_its_first_line(runner: CheckRunner, tmp_path: Path) -> None:
    cmd = script(tmp_path, "down.sh", "#!/bin/sh\necho 'backend says no' >&2\nexit 3\n")
    outcome = await runner.run(replace(BASE, command=cmd))
    assert not outcome.ok and outcome.detail == "exit status 3: backend says no"


async def test_no_shell_is_involved(runner: CheckRunner, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cmd = script(tmp_path, "args.sh", '#!/bin/sh\necho "$1"\n')
    outcome = await runner.run(replace(BASE, command=f"{cmd} ';touch {marker}'"))
    assert outcome.ok and outcome.detail == f"exit status 0: ;touch {marker}"
    assert not marker.exists()


async def test_missing_command(runner: CheckRunner, tmp_path: Path) -> None:
    outcome = await runner.run(replace(BASE, command=str(tmp_path / "nope")))
    assert not outcome.ok and outcome.detail.startswith("cannot run")


async def test_external_perl(runner: CheckRunner, tmp_path: Path) -> None:
    path = tmp_path / "check.pl"  # not executable: perl runs it
    path.write_text('print "args: @ARGV\\n"; exit($ARGV[1] eq "80" ? 0 : 1);\n')
    outcome = await runner.run(replace(BASE, type=CheckType.EXTERNAL_PERL, command=str(path)))
    assert outcome.ok and outcome.detail == "exit status 0: args: " + " ".join(ARGS), outcome


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _read_pids(pidfile: Path) -> list[int]:
    return [int(p) for p in pidfile.read_text().split()] if pidfile.exists() else []


async def _all_gone(pids: list[int], within: float = 3.0) -> bool:
    """True once none of `pids` runs; a signalled process takes a moment to die on a busy machine."""
    for _ in range(int(within / 0.02)):
        if not any(_alive(p) for p in pids):
            return True
        await asyncio.sleep(0.02)
    return False


async def _pids(pidfile: Path, count: int) -> list[int]:
    for _ in range(200):
        pids = _read_pids(pidfile)
        if len(pids) >= count:
            return pids
        await asyncio.sleep(0.01)
    raise AssertionError("the command did not start")


@pytest.mark.parametrize("ignores_term", [False, True])
async def test_deadline_kills_the_whole_group(tmp_path: Path, ignores_term: bool) -> None:
    pidfile = tmp_path / "pids"
    trap = "trap '' TERM\n" if ignores_term else ""
    # the command starts a grandchild, then both sleep far past the deadline
    cmd = script(tmp_path, "slow.sh",
                 f"#!/bin/sh\n{trap}sh -c '{trap.strip()}\necho $$ >> {pidfile}; sleep 30' &\n"
                 f"echo $$ >> {pidfile}\nsleep 30\n")
    runner = CheckRunner(CheckContext(kill_grace=0.3))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    outcome = await runner.run(replace(BASE, command=cmd, checktimeout=0.5))
    assert not outcome.ok and outcome.detail == "timed out after 0.5 s"
    assert loop.time() - t0 < 0.9  # the verdict does not wait for the kill
    pids = await _pids(pidfile, 2)
    await runner.close()  # waits for the background SIGTERM/SIGKILL work
    assert await _all_gone(pids), [p for p in pids if _alive(p)]


async def test_output_is_bounded(runner: CheckRunner, tmp_path: Path) -> None:
    # 20 MB of output: drained (the command is not blocked on a full pipe), not kept
    cmd = script(tmp_path, "chatty.sh", "#!/bin/sh\nhead -c 20000000 /dev/zero | tr '\\0' 'y'\nexit 0\n")
    outcome = await runner.run(replace(BASE, command=cmd, checktimeout=20))
    assert outcome.ok, outcome.detail[:100]
    assert len(outcome.detail) < 300


async def test_runner_close_leaves_no_process_behind(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    cmd = script(tmp_path, "slow.sh", f"#!/bin/sh\necho $$ >> {pidfile}\nexec sleep 30\n")
    runner = CheckRunner(CheckContext(kill_grace=0.2))
    task = asyncio.ensure_future(runner.run(replace(BASE, command=cmd, checktimeout=30)))
    pids = await _pids(pidfile, 1)
    task.cancel()  # the daemon shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
    await runner.close()
    assert await _all_gone(pids)
