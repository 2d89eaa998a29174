"""systemd/healthd.service: `systemd-analyze verify` says nothing, and the hardening holds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "healthd.service"
HEALTHD = Path(sys.executable).parent / "healthd"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


def installed_unit(tmp_path: Path) -> Path:
    """The unit as installed, with ExecStart pointing at this checkout's healthd."""
    text = UNIT.read_text().replace("/usr/local/bin/healthd", str(HEALTHD))
    path = tmp_path / "healthd.service"
    path.write_text(text)
    return path


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    # Units come from the unit's own folder and the vendor folder only: units that other
    # packages enabled under /etc (and their own warnings) are not healthd's to judge.
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit.parent}:/lib/systemd/system"}
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, env=env
    )


def about_healthd(stderr: str) -> list[str]:
    """verify's lines, less those about other packages' vendor units (Conflicts=ldirectord.service
    loads ldirectord's unit when that package is installed, and its warnings are not ours)."""
    return [line for line in stderr.splitlines() if not line.startswith("/lib/systemd/system/")]


def test_verify_prints_nothing(tmp_path: Path) -> None:
    assert HEALTHD.exists()
    result = verify(installed_unit(tmp_path))
    assert about_healthd(result.stderr) == []
    assert result.returncode == 0


def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key makes verify talk."""
    path = installed_unit(tmp_path)
    path.write_text(path.read_text().replace("ProtectHome=yes", "ProtectHom=yes"))
    result = verify(path)
    assert "ProtectHom" in result.stderr


def test_security_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(installed_unit(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for healthd.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-500:]
    assert float(match.group(1)) <= 2.5


def test_unit_shape() -> None:
    keys: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    assert keys["Type"] == ["notify"]
    assert keys["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert int(keys["WatchdogSec"][0]) > 0
    capabilities = {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}
    assert set(keys["CapabilityBoundingSet"][0].split()) == capabilities
    assert keys["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert keys[key] == ["yes"]
    assert keys["ProtectSystem"] == ["strict"]
