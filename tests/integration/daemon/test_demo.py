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


def test_demo_serves_its_status_page_while_it_runs(tmp_path: Path) -> None:
    import json
    import re
    import urllib.request

    proc = subprocess.Popen([str(HEALTHD), "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            found = re.search(r"status page: (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        assert url is not None, "the demo did not say where its status page is"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"status.json" in response.read()
        with urllib.request.urlopen(url + "status.json", timeout=10) as response:
            doc = json.load(response)
        assert doc["ipvs"] == "memory" and doc["virtuals"][0]["service"].startswith("TCP 127.0.0.100:")
        proc.stdout.read()  # to the end of the demo
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
