"""monitorfile lines in ldirectord's format, and the writer: buffered, off the loop, rotation-safe.

The expected ids were produced by running ldirectord 4.12's own get_real_id_str and
service_set formatting (Debian's /usr/sbin/ldirectord) on the same servers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from healthd.checks.spec import Outcome
from healthd.config import parse_text
from healthd.daemon.monitorfile import MonitorFiles, check_words, format_line

CONFIG = """\
virtual=192.0.2.1:80
\treal=10.0.0.2:80 masq 2
\tservice=http
\trequest="ok.html"
\treceive="ok"
\tmonitorfile="{path}"
virtual=192.0.2.1:81
\treal=10.0.0.2:80 gate 1
\tservice=http
\tchecktype=3
\tcheckport=8080
\tvirtualhost=www.example.com
\trequest="/a b:c.html"
\treceive="x|y\\d+"
\tmonitorfile="{path}"
virtual=7
\treal=10.0.0.3 gate
\tchecktype=external
\tcheckcommand="/usr/local/bin/check x"
\tmonitorfile="{other}"
virtual=192.0.2.4:53
\treal=10.0.0.4:53 masq
\tchecktype=connect
\tprotocol=udp
"""


def config(tmp_path: Path):
    return parse_text(CONFIG.format(path=tmp_path / "mon.log", other=tmp_path / "other.log"), "m.cf")


def test_ids_are_ldirectords(tmp_path: Path) -> None:
    web, combined, external, dns = config(tmp_path).virtuals
    assert check_words(web, web.reals[0]) == "negotiate http tcp 10.0.0.2 80 2 masq /ok.html ok"
    assert check_words(combined, combined.reals[0]) == (
        "combined http tcp 10.0.0.2 80 www.example.com 8080 1 gate /a b c.html x|yd+")
    assert check_words(external, external.reals[0]) == (
        "external /usr/local/bin/check x fwm 10.0.0.3 0 1 gate / ")
    assert check_words(dns, dns.reals[0]) == "connect udp 10.0.0.4 53 1 masq / "


def test_line_escapes_the_message_as_ldirectord() -> None:
    assert format_line("Thu Dec  3 03:10:09 2026", 42, "connect udp 10.0.0.4 53 1 masq / ", False,
                       "bad|thing\n100%") == (
        "[Thu Dec  3 03:10:09 2026] [42] connect udp 10.0.0.4 53 1 masq /  [down] bad%7cthing%0a100%25\n")
    assert format_line("T", 1, "w", True, "").endswith("[up] -\n")


async def test_one_line_per_result_per_virtual_in_its_file(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    web, combined, external, dns = cfg.virtuals
    files = MonitorFiles(cfg, clock=lambda: 1764731409.0)
    files.record(web.reals[0].check, Outcome(True, "HTTP 200", 0.01))
    files.record(external.reals[0].check, Outcome(False, "exit status 1", 0.01))
    files.record(dns.reals[0].check, Outcome(True, "port open", 0.01))  # no monitorfile: nothing
    files.maintenance(web, web.reals[0], True)
    files.record(web.reals[0].check, Outcome(True, "HTTP 200", 0.01))
    await files.close()
    stamp = time.ctime(1764731409.0)
    pid = os.getpid()
    assert (tmp_path / "mon.log").read_text() == (
        f"[{stamp}] [{pid}] negotiate http tcp 10.0.0.2 80 2 masq /ok.html ok [up] HTTP 200\n"
        f"[{stamp}] [{pid}] negotiate http tcp 10.0.0.2 80 2 masq /ok.html ok [down] Server in maintenance\n"
    )
    assert (tmp_path / "other.log").read_text() == (
        f"[{stamp}] [{pid}] external /usr/local/bin/check x fwm 10.0.0.3 0 1 gate /  [down] exit status 1\n")
    assert combined.reals[0].check != web.reals[0].check  # a different check: no line from web's result


async def test_a_rotated_file_is_reopened_and_a_reload_reopens_too(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    web = cfg.virtuals[0]
    path = tmp_path / "mon.log"
    files = MonitorFiles(cfg)
    ok = Outcome(True, "HTTP 200", 0.01)
    files.record(web.reals[0].check, ok)
    await files.flush()
    path.rename(tmp_path / "mon.log.1")  # logrotate's move
    files.record(web.reals[0].check, ok)
    await files.flush()
    assert len((tmp_path / "mon.log.1").read_text().splitlines()) == 1
    assert len(path.read_text().splitlines()) == 1
    # copytruncate-style rotation keeps the inode; a reload reopens anyway, and O_APPEND writes at the end
    path.write_text("")
    files.configure(cfg)
    files.record(web.reals[0].check, ok)
    await files.close()
    assert len(path.read_text().splitlines()) == 1


async def test_an_unwritable_file_costs_only_its_lines(tmp_path: Path) -> None:
    text = CONFIG.format(path=tmp_path / "missing-dir" / "mon.log", other=tmp_path / "other.log")
    cfg = parse_text(text, "m.cf")
    web, _, external, _ = cfg.virtuals
    files = MonitorFiles(cfg)
    files.record(web.reals[0].check, Outcome(True, "HTTP 200", 0.01))
    files.record(external.reals[0].check, Outcome(True, "exit status 0", 0.01))
    await files.close()
    assert len((tmp_path / "other.log").read_text().splitlines()) == 1
