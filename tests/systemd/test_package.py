"""The operator's path under a real systemd, in order: install, start, status, journal, reload, watchdog,
a second instance, upgrade under traffic, a venv the unit cannot see, stop, purge.

The steps share one VM boot and one lab (TCG makes each healthd start cost seconds), so they run in
this file's order and each leaves the state the next one starts from.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from healthd import __version__
from tests.systemd.conftest import (
    CONFIG,
    NEWER,
    PACKAGE,
    REALS,
    UPGRADE_SUFFIX,
    VIP,
    Sampler,
    SystemdLab,
    Traffic,
    both_reals,
    config_text,
    conns,
    journal,
    messages,
    real_key,
    record,
    sh,
    show,
    status_line,
    table,
    timed,
    unit_status,
    wait_table,
)

pytestmark = pytest.mark.timeout(600)  # each step waits for healthd starts on an emulated CPU

MAIN = f"TCP {VIP}:80"
OTHER = f"TCP {VIP}:8080"
OTHER_CONFIG = Path("/etc/ha.d/x.cf")


def test_apt_installs_the_package_without_starting_it(lab: SystemdLab) -> None:
    CONFIG.parent.mkdir(exist_ok=True)
    CONFIG.write_text(config_text())
    took, _ = timed("apt-get", "install", "-y", "-q", f"./{PACKAGE.relative_to(Path.cwd())}", timeout=600)
    record("apt install (s)", took)
    assert sh("dpkg-query", "-W", "-f", "${Version}", "healthd").stdout == __version__
    for path in ("/usr/sbin/healthd", "/lib/systemd/system/healthd.service",
                 "/lib/systemd/system/healthd@.service", "/etc/default/healthd", "/etc/logrotate.d/healthd",
                 "/usr/share/man/man8/healthd.8.gz", "/usr/share/man/man5/healthd.cf.5.gz",
                 "/usr/share/doc/healthd/examples/ldirectord.cf"):
        assert Path(path).exists(), path
    assert CONFIG.read_text() == config_text()  # the operator's file is never replaced
    assert show("healthd.service", "ActiveState") == "inactive"  # not started on install
    assert sh("systemctl", "is-enabled", "healthd", check=False).stdout.strip() == "disabled"
    assert sh("/usr/sbin/healthd", "check-install").returncode == 0


def test_start_returns_once_the_first_round_is_applied(lab: SystemdLab) -> None:
    took, _ = timed("systemctl", "start", "healthd")
    record("systemctl start healthd (s)", took)
    t = table()  # read at once: no waiting allowed here
    assert both_reals(MAIN, t), t
    assert show("healthd.service", "ActiveState") == "active"


def test_status_line_counts_the_reals(lab: SystemdLab) -> None:
    assert status_line("healthd") == "2/2 reals up in 1 virtual service"


def test_journal_has_structured_fields_when_a_real_breaks(lab: SystemdLab) -> None:
    lab.sites["real1"].break_check()
    try:
        wait_table(lambda t: set(t.get(MAIN, {})) == {real_key("real2")}, 30, "real1 leaves the table")
        entries = journal("healthd", f"REAL={real_key('real1')}", "STATE=down")
        assert entries, messages("healthd")[-2000:]
        assert entries[-1]["VIRTUAL"] == f"{VIP}:80"
        assert "real server" in entries[-1]["MESSAGE"]
        assert status_line("healthd") == "1/2 reals up in 1 virtual service"
    finally:
        lab.sites["real1"].restore_check()
    wait_table(lambda t: both_reals(MAIN, t), 30, "real1 comes back")


def test_reload_keeps_running_on_a_broken_file_then_applies_a_good_one(lab: SystemdLab) -> None:
    broken = config_text() + "\tbogus=1\n"
    line = broken.count("\n")
    CONFIG.write_text(broken)
    before = table()
    sh("systemctl", "reload", "healthd")
    pattern = re.compile(rf"{re.escape(str(CONFIG))}:{line}:.*bogus")
    got = _wait(lambda: pattern.search(messages("healthd")), 60)
    assert got, messages("healthd")[-2000:]
    assert show("healthd.service", "ActiveState") == "active"
    assert "reload failed" in status_line("healthd")
    assert table() == before

    CONFIG.write_text(config_text(weight2=3))
    started = time.monotonic()
    sh("systemctl", "reload", "healthd")
    wait_table(lambda t: t.get(MAIN, {}).get(real_key("real2")) == 3, 60, "real2 gets weight 3")
    record("systemctl reload to the new weight in the table (s)", time.monotonic() - started)
    assert status_line("healthd") == "2/2 reals up in 1 virtual service"


def test_watchdog_restarts_a_stopped_healthd_which_adopts_the_table(lab: SystemdLab) -> None:
    pid = show("healthd.service", "MainPID")
    restarts = int(show("healthd.service", "NRestarts"))
    counted = conns(MAIN)
    lab.client.curl(f"http://{VIP}/")
    started = time.monotonic()
    with Sampler() as sampler:
        sh("kill", "-STOP", pid)
        back = _wait(lambda: show("healthd.service", "MainPID") not in ("0", pid)
                     and show("healthd.service", "ActiveState") == "active", 180)
    record("watchdog: SIGSTOP to active again (s)", time.monotonic() - started)
    assert back, unit_status("healthd")
    assert int(show("healthd.service", "NRestarts")) == restarts + 1
    assert "watchdog timeout" in messages("healthd").lower()
    flaps = [t for t in sampler.samples if not both_reals(MAIN, t)]
    assert not flaps, f"{len(flaps)} of {len(sampler.samples)} samples lacked a real: {flaps[:3]}"
    assert conns(MAIN) > counted  # the service was never removed: its counter carried on


def test_a_second_instance_runs_its_own_file(lab: SystemdLab) -> None:
    OTHER_CONFIG.write_text(config_text(port=8080))
    took, _ = timed("systemctl", "start", "healthd@x.cf")
    record("systemctl start healthd@x.cf (s)", took)
    t = table()
    assert both_reals(OTHER, t) and both_reals(MAIN, t), t
    assert status_line("healthd@x.cf") == "2/2 reals up in 1 virtual service"
    assert Path("/run/healthd.x.cf.pid").exists() and Path("/run/healthd.ldirectord.cf.pid").exists()


def test_upgrade_under_traffic_restarts_both_units_without_a_flap(lab: SystemdLab) -> None:
    pids = {u: show(u, "MainPID") for u in ("healthd.service", "healthd@x.cf.service")}
    counted = {s: conns(s) for s in (MAIN, OTHER)}
    with Traffic(lab.client, f"http://{VIP}/") as traffic, Sampler() as sampler:
        _wait(lambda: traffic.bodies, 60)  # traffic flows before the upgrade starts ...
        took, _ = timed("dpkg", "-i", str(NEWER), timeout=600)
        before = len(traffic.bodies)
        _wait(lambda: len(traffic.bodies) > before, 60)  # ... and after it ended
    record("dpkg -i of the newer package, restarts included (s)", took)
    assert sh("dpkg-query", "-W", "-f", "${Version}", "healthd").stdout == __version__ + UPGRADE_SUFFIX
    for unit, pid in pids.items():
        assert show(unit, "ActiveState") == "active", unit_status(unit)
        assert show(unit, "MainPID") not in ("0", pid), f"{unit} was not restarted"
    assert "the IPVS table is left as it is" in messages("healthd")
    flaps = [t for t in sampler.samples if not (both_reals(MAIN, t) and both_reals(OTHER, t))]
    assert not flaps, f"{len(flaps)} of {len(sampler.samples)} samples lacked a real: {flaps[:3]}"
    failed = traffic.bodies.count("")
    record("requests during the upgrade (answered/failed)", f"{len(traffic.bodies) - failed}/{failed}")
    assert failed == 0 and set(traffic.bodies) == set(REALS)
    for service, before_count in counted.items():
        assert conns(service) >= before_count
    assert not Path("/run/healthd.keep-table").exists()


def test_a_venv_the_unit_cannot_see_is_named_before_exec(lab: SystemdLab) -> None:
    """A venv under /root: without healthd's check systemd says only 203/EXEC; with it, the journal says why.

    (healthd-raw is the same unit without the check: it proves the trap is real in this VM.)"""
    # what `/usr/bin/python3 -m venv --system-site-packages /root/hv` makes, less the 30 s it takes here
    Path("/root/hv/bin").mkdir(parents=True)
    Path("/root/hv/bin/python3").symlink_to("/usr/bin/python3")
    Path("/root/hv/pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = true\n")
    script = Path("/root/hv/bin/healthd")
    script.write_text("#!/root/hv/bin/python3\nimport sys\nfrom healthd.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    unit = (Path(__file__).parents[2] / "systemd" / "healthd.service").read_text()
    unit = unit.replace("/usr/local/bin/healthd", str(script))
    Path("/etc/systemd/system/healthd-venv.service").write_text(unit)
    raw = "\n".join(line for line in unit.splitlines() if not line.startswith("ExecStartPre="))
    Path("/etc/systemd/system/healthd-raw.service").write_text(raw + "\n")
    sh("systemctl", "daemon-reload")
    assert sh("systemctl", "start", "healthd-raw", check=False).returncode != 0
    assert show("healthd-raw.service", "ExecMainStatus") == "203"  # the trap is real here
    assert sh("systemctl", "start", "healthd-venv", check=False).returncode != 0
    text = messages("healthd-venv")
    assert "its venv /root/hv is under /root, which healthd.service hides (ProtectHome=yes)" in text, text
    assert show("healthd-venv.service", "ExecMainStatus") != "203"


def test_stop_removes_the_units_services(lab: SystemdLab) -> None:
    took, _ = timed("systemctl", "stop", "healthd")
    record("systemctl stop healthd (s)", took)
    t = table()
    assert MAIN not in t and both_reals(OTHER, t), t  # cleanstop=yes; the other instance is untouched
    assert show("healthd.service", "ActiveState") == "inactive"


def test_purge_stops_the_rest_and_leaves_the_operators_files(lab: SystemdLab) -> None:
    took, _ = timed("apt-get", "purge", "-y", "-q", "healthd", timeout=600)
    record("apt purge (s)", took)
    assert OTHER not in table()  # prerm stopped healthd@x.cf
    assert CONFIG.read_text() == config_text(weight2=3) and OTHER_CONFIG.read_text() == config_text(port=8080)
    for path in ("/usr/sbin/healthd", "/etc/default/healthd", "/etc/logrotate.d/healthd",
                 "/lib/systemd/system/healthd.service"):
        assert not Path(path).exists(), path
    assert sh("dpkg-query", "-W", "-f", "${Status}", "healthd", check=False).stdout.strip() in (
        "", "unknown ok not-installed")


def _wait(predicate, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.5)
