"""systemd/healthd.service and healthd@.service: `systemd-analyze verify` says nothing, the hardening holds.

healthd@.service must be healthd.service with the config file taken from the instance name: one
home for every other line, checked here rather than trusted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[3] / "systemd"
UNIT = UNITS / "healthd.service"
TEMPLATE = UNITS / "healthd@.service"
HEALTHD = Path(sys.executable).parent / "healthd"
MAN = UNITS.parent / "man"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


def installed(unit: Path, tmp_path: Path) -> Path:
    """The unit as installed, with ExecStart pointing at this checkout's healthd."""
    text = unit.read_text().replace("/usr/local/bin/healthd", str(HEALTHD))
    path = tmp_path / unit.name
    path.write_text(text)
    return path


def verify(unit: Path, name: str | None = None) -> subprocess.CompletedProcess[str]:
    # Units come from the unit's own folder and the vendor folder only: units that other
    # packages enabled under /etc (and their own warnings) are not healthd's to judge.
    # Documentation=man:... is checked too: the checkout's man/ is laid out as a man path.
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit.parent}:/lib/systemd/system", "MANPATH": str(MAN)}
    result = subprocess.run(["systemd-analyze", "verify", name or str(unit)], capture_output=True, text=True,
                            timeout=60, env=env)
    # Conflicts=ldirectord.service loads ldirectord's unit when it is installed: its warnings are not ours.
    result.stderr = "".join(line for line in result.stderr.splitlines(keepends=True) if "healthd" in line)
    return result


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE], ids=lambda u: u.name)
def test_verify_prints_nothing(unit: Path, tmp_path: Path) -> None:
    assert HEALTHD.exists()
    path = installed(unit, tmp_path)
    result = verify(path, "healthd@other.cf.service" if unit is TEMPLATE else None)
    assert result.stderr == ""
    assert result.returncode == 0


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE], ids=lambda u: u.name)
def test_verify_would_catch_a_typo(unit: Path, tmp_path: Path) -> None:
    """The check above can fail: a misspelt key makes verify talk."""
    path = installed(unit, tmp_path)
    path.write_text(path.read_text().replace("ProtectHome=yes", "ProtectHom=yes"))
    result = verify(path, "healthd@other.cf.service" if unit is TEMPLATE else None)
    assert "ProtectHom" in result.stderr


def test_security_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(installed(UNIT, tmp_path))],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for healthd.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-500:]
    assert float(match.group(1)) <= 2.5


def keys_of(unit: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


def test_unit_shape() -> None:
    keys = keys_of(UNIT)
    assert keys["Type"] == ["notify"]
    assert keys["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert int(keys["WatchdogSec"][0]) > 0
    capabilities = {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}
    assert set(keys["CapabilityBoundingSet"][0].split()) == capabilities
    assert keys["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert keys[key] == ["yes"]
    assert keys["ProtectSystem"] == ["strict"]
    assert keys["Conflicts"] == ["ldirectord.service"]
    # options from /etc/default/healthd; the interpreter checked outside the sandbox first
    assert keys["EnvironmentFile"] == ["-/etc/default/healthd"]
    assert keys["ExecStart"] == ["/usr/local/bin/healthd $HEALTHD_OPTS ldirectord.cf start"]
    assert keys["ExecStartPre"] == ["+/usr/local/bin/healthd check-install --quiet"]


def test_template_is_the_unit_for_the_instance_file() -> None:
    unit, template = keys_of(UNIT), keys_of(TEMPLATE)
    assert template.pop("ExecStart") == ["/usr/local/bin/healthd $HEALTHD_OPTS %I start"]
    assert template.pop("Description") == [unit.pop("Description")[0] + " for /etc/ha.d/%I"]
    unit.pop("ExecStart")
    assert template == unit
