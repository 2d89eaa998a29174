"""The kernel tier: a real IPVS table, inside the test VM (python -m tests.vm.harness pytest tests/kernel)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from healthd.ipvs.netlink import NetlinkTable

HERE = Path(__file__).parent
IN_VM = bool(os.environ.get("HEALTHD_IN_VM"))


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
