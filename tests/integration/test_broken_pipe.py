"""A reader that goes away early (`healthd check-config FILE | head -1`) gets no traceback on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / "etc" / "ha.d" / "ldirectord.cf"


def test_check_config_into_a_closed_pipe_prints_no_traceback() -> None:
    # the reader closes at once, before healthd writes its many lines
    proc = subprocess.Popen([sys.executable, "-m", "healthd", "check-config", str(CONFIG)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=30)
    assert "Traceback" not in err, err
    assert code == 141
