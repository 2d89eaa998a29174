"""The kernel tier: a real IPVS table, inside the test VM (python -m tests.vm.harness pytest tests/kernel)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from healthd.ipvs.netlink import NetlinkTable

HERE = Path(__file__).parent
IN_VM = bool(os.environ.get("HEALTHD_IN_VM"))
LAB_NAMES = {"seed": "seed lab", "safety": "safety lab", "ha": "HA lab"}
REPORTS: dict[str, list[str]] = {}  # lab name -> each test's measured lines, repeated at the end


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.kernel)
            item.add_marker(pytest.mark.root)
            if not IN_VM and not Path("/proc/net/ip_vs").exists():
                item.add_marker(pytest.mark.skip(
                    reason="needs a kernel with IPVS: run `python -m tests.vm.harness pytest tests/kernel`"))


def ipvsadm(*args: str) -> str:
    proc = subprocess.run(["ipvsadm", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"ipvsadm {' '.join(args)}: {proc.stderr.strip()}"
    return proc.stdout


@pytest.fixture
async def table() -> AsyncIterator[NetlinkTable]:
    """The kernel's table, empty at the start and flushed at the end."""
    t = await NetlinkTable.open()
    await t.flush()
    try:
        yield t
    finally:
        await t.flush()
        await t.close()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Print a test's measurements now and again in the session's summary, under its lab's name."""
    folder = Path(str(request.node.path)).parent.name
    lab = LAB_NAMES.get(folder, folder)

    def add(*lines: str) -> None:
        text = "\n".join([f"{request.node.name}:", *(f"  {line}" for line in lines)])
        print(f"\n{text}")
        REPORTS.setdefault(lab, []).append(text)

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for lab, texts in REPORTS.items():
        terminalreporter.write_sep("=", f"{lab} reports")
        for text in texts:
            terminalreporter.write_line(text)
