"""healthd's records in a real journald, found by field: `journalctl REAL=...` shows one real's history."""

from __future__ import annotations

import shlex
import sys
import textwrap

import pytest

from tests.integration.daemon.journal import available, private_journal

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not available(), reason="needs systemd-journald, unshare and journalctl"),
]

EMIT = textwrap.dedent("""
    import os
    from healthd.daemon import logs
    st = os.fstat(2)
    os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"  # as systemd sets it for a service
    assert logs.under_journald()
    logs.MASKER.update(["hunter2-secret"])
    logs.configure(logs.choose_target(False, "/var/log/ldirectord.log", logs.under_journald()))
    logs.state_change("127.0.0.1:80", "10.0.0.2:80", "negotiate http 10.0.0.2:80", False, "HTTP 500")
    logs.state_change("127.0.0.1:80", "10.0.0.3:80", "negotiate http 10.0.0.3:80", False, "refused")
    logs.state_change("127.0.0.1:80", "10.0.0.2:80", "negotiate http 10.0.0.2:80", True, "HTTP 200")
    logs.log.warning("login with password %s failed", "hunter2-secret")
""")


def test_state_changes_are_queryable_by_field(tmp_path) -> None:
    script = tmp_path / "emit.py"  # a file, not -c: the secret must not sit in _CMDLINE either
    script.write_text(EMIT)
    workload = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    by_real, by_state, all_healthd = private_journal(
        workload, [["REAL=10.0.0.2:80"], ["STATE=down"], ["SYSLOG_IDENTIFIER=healthd"]]
    )
    assert [e["STATE"] for e in by_real] == ["down", "up"]
    assert {e["REAL"] for e in by_real} == {"10.0.0.2:80"}
    first = by_real[0]
    assert first["VIRTUAL"] == "127.0.0.1:80"
    assert first["CHECK"] == "negotiate http 10.0.0.2:80"
    assert first["MESSAGE"] == (
        "real server 10.0.0.2:80 of virtual service 127.0.0.1:80 went down"
        " (negotiate http 10.0.0.2:80 check: HTTP 500)"
    )
    assert first["SYSLOG_IDENTIFIER"] == "healthd"
    assert sorted(e["REAL"] for e in by_state) == ["10.0.0.2:80", "10.0.0.3:80"]
    # The secret never reached the journal, in any field.
    assert len(all_healthd) == 4
    for entry in all_healthd:
        assert "hunter2-secret" not in str(entry)
    assert "********" in all_healthd[-1]["MESSAGE"]


def test_the_daemon_logs_state_changes_to_journald(tmp_path) -> None:
    """`healthd start` under a journal stream: `journalctl REAL=...` shows each real's own history."""
    from healthd.demo import free_port
    from tests.integration.daemon.helpers import HEALTHD, config_text

    up, dead = "127.0.0.22", "127.0.0.23"
    port = free_port([up, dead])
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "ok.html").write_text("ok\n")
    config = tmp_path / "web.cf"
    config.write_text(config_text("127.0.0.100", port, [up, dead]))
    py = shlex.quote(sys.executable)
    workload = "\n".join([
        f"{py} -m http.server --bind {up} --directory {shlex.quote(str(tmp_path / 'www'))} {port}"
        " >/dev/null 2>&1 & WEB=$!",
        "sleep 0.5",
        # JOURNAL_STREAM names the stream systemd connects a service's stderr to: here a file.
        f"exec 3>{shlex.quote(str(tmp_path / 'stderr'))}",
        f"STREAM=$(stat -L -c '%d:%i' {shlex.quote(str(tmp_path / 'stderr'))})",
        f"JOURNAL_STREAM=$STREAM HEALTHD_RUNDIR={shlex.quote(str(tmp_path))} timeout -s TERM 4"
        f" {shlex.quote(HEALTHD)} --ipvs memory {shlex.quote(str(config))} start 2>&3",
        "kill $WEB",
    ])
    # healthd is in the foreground without -d here because supervised=yes is set below.
    config.write_text(config.read_text().replace("quiescent=no", "quiescent=no\nsupervised=yes"))
    good, bad, lifecycle = private_journal(
        workload, [[f"REAL={up}:{port}"], [f"REAL={dead}:{port}"], ["SYSLOG_IDENTIFIER=healthd"]]
    )
    assert [(e["STATE"], e["VIRTUAL"]) for e in good] == [("up", f"127.0.0.100:{port}")]
    assert [e["STATE"] for e in bad] == ["down"]
    assert bad[0]["CHECK"] == f"negotiate http {dead}:{port}"
    expected = f"real server {dead}:{port} of virtual service 127.0.0.100:{port} is down"
    assert bad[0]["MESSAGE"].startswith(expected)
    messages = [e["MESSAGE"] for e in lifecycle]
    assert any(m.startswith("starting with") for m in messages)
    assert any(m.startswith("first round of checks applied: 1/2 reals up") for m in messages)
    assert messages[-1] == "stopped"
