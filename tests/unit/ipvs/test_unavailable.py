"""On a kernel without IPVS, opening the kernel table fails with one clear line (after modprobe)."""

import os
from pathlib import Path

import pytest

from healthd.ipvs.backend import Unavailable
from healthd.ipvs.netlink import NetlinkTable

pytestmark = pytest.mark.root


HAS_IPVS = Path("/proc/net/ip_vs").exists()


async def test_open_says_the_kernel_has_no_ipvs() -> None:
    if os.environ.get("HEALTHD_IN_VM") or HAS_IPVS:
        table = await NetlinkTable.open()  # this kernel has IPVS: opening must simply work
        assert isinstance(await table.dump(), dict)
        await table.close()
        return
    with pytest.raises(Unavailable) as e:
        await NetlinkTable.open()
    text = str(e.value)
    assert "no IPVS" in text and "\n" not in text
