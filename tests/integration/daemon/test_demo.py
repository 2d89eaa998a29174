"""`healthd demo` from the command line: no privilege, a real server leaves and rejoins, exits by itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

HEALTHD = Path(sys.executable).parent / "healthd"


def test_demo_shows_a_real_leaving_and_rejoining(tmp_path: Path) -> None:
    argv = [str(HEALTHD), "demo"]
    if shutil.which("setpriv"):
        # Without any capability: the demo must not need root's powers (no IPVS, no low ports).
        argv = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *argv]
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert elapsed < 30
    assert "IN-MEMORY IPVS table" in out
    assert "Traceback" not in out + result.stderr
    steps = ["== 1.", "== 127.0.0.3 left the table:", "== 127.0.0.3 is back in the table:", "== 4."]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions)
    tables = out.split("== ")
    # The broken real is missing only from the table printed after it broke.
    assert "-> 127.0.0.3:" in tables[1] and "-> 127.0.0.3:" not in tables[3] and "-> 127.0.0.3:" in tables[5]
    assert "-> 127.0.0.2:" in tables[3] and "-> 127.0.0.4:" in tables[3]
    assert "127.0.0.3" in out and "went down" in out and "is up again" in out
    assert "(empty)" in tables[-1]  # cleanstop removed the virtual service at the end
