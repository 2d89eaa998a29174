"""healthd refuses only what ldirectord refuses: Debian's ldirectord judges each file of a corpus.

Each file is run through `/usr/sbin/ldirectord FILE status`, which reads the whole file
exactly as a start would (its `read_config`) and exits 2 on a configuration error, 3 when
it would run it ("stopped"). healthd's parser judges the same file. A file ldirectord runs
and healthd refuses is a failure unless it is one of the DELIBERATE cases, each of which the
README's compatibility table lists with its reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from healthd.config import ConfigError, parse_text
from healthd.config.cli import main as check_config

LDIRECTORD = "/usr/sbin/ldirectord"
pytestmark = pytest.mark.skipif(not Path(LDIRECTORD).exists() or shutil.which("perl") is None,
                                reason="needs Debian's ldirectord (./run test installs it)")

V = "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 gate\n"


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    ldirectord_runs: bool  # what Debian's ldirectord 4.12 does with it
    healthd_runs: bool
    warning: str = ""  # a fragment of the warning healthd gives (FILE:LINE is checked too)


CASES = [
    # the findings of issue 14: ldirectord runs these, so healthd does too (with a warning)
    Case("ops on tcp", V + "\tops=yes\n", True, True, "applies to UDP only"),
    Case("empty global fallbackcommand", 'fallbackcommand=""\n' + V, True, True, "read as not set"),
    Case("-w before the weight", "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 gate -w 1\n", True, True),
    Case("a word before the weight", "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 gate junk 2\n", True, True,
         "'junk' is ignored"),
    Case("text after virtual", "virtual=127.0.0.1:80 web\n\treal=127.0.0.2:80 gate\n", True, True,
         "'web' after the value"),
    Case("text after scheduler", V + "\tscheduler=rr    \\\\ Kommentar\n", True, True, "after the value"),
    Case("a scheduler the kernel lacks", V + "\tscheduler=fastest\n", True, True,
         "the kernel refuses this virtual service"),
    Case("text after service", V + "\tservice=http web\n", True, True, "'web' after the value"),
    Case("text after request", V + '\trequest="index.html" for the check\n', True, True, "after the value"),
    Case("text after receive", V + '\treceive="ok" (the page says ok)\n', True, True, "after the value"),
    Case("text after a number", "checktimeout=5s\nnegotiatetimeout=-1\n" + V, True, True, "'s' after"),
    Case("text after smtp", "smtp=127.0.0.25 relay\n" + V, True, True, "'relay' after"),
    Case("text after checktype", V + "\tchecktype=connect please\n", True, True, "'please' after"),
    Case("text after checkport and persistent", V + "\tcheckport=80 x\n\tpersistent=300 s\n", True, True),
    Case("empty callback and maintenancedir", 'callback=""\nmaintenancedir=""\n' + V, True, True),
    Case("empty comment and servicename", V + "\tcomment=\n\tservicename=\n", True, True),
    Case("lower threshold alone", "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 gate l:5\n", True, True,
         "the kernel refuses this real server (ERANGE)"),
    Case("lower above upper", "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 gate l:10 u:5\n", True, True,
         "lower threshold l:10 is above the upper threshold u:5"),
    Case("upper before lower", "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 gate u:10 l:5\n", True, True,
         "ldirectord reads no u: written before l:"),
    Case("duplicate real", V + "\treal=127.0.0.2:80 gate\n", True, True, "only the first is used"),
    Case("address without port", "virtual=127.0.0.1\n\treal=127.0.0.2 gate\n", True, True,
         "firewall mark 127"),
    Case("port 0 with persistence (every port)", "virtual=127.0.0.1:0\n\treal=127.0.0.2 gate\n\t"
         "persistent=300\n\tchecktype=on\n", True, True),
    Case("comment after a number", "checkinterval=1 # seconds\n" + V, True, True),
    Case("weight 0 and a masq real without port",
         "virtual=127.0.0.1:80\n\treal=127.0.0.2 masq 0\n", True, True),
    # healthd is more lenient: ldirectord refuses these, healthd runs them (README says so)
    Case("comment after yes", "quiescent=yes # keep them\n" + V, False, True),
    Case("unquoted request", V + "\trequest=index.html\n", False, True),
    Case("# inside a quoted receive", V + '\treceive="a#b"\n', False, True),
    Case("blank line inside a section", V + "\n\tscheduler=rr\n", False, True),
    Case("typographic quote", V + '\treceive=\u201cTest"\n', False, True, "typographic quotes"),
    Case("section line indented by one space", "virtual=127.0.0.1:80\n real=127.0.0.2:80 gate\n",
         False, True),
    # both refuse
    Case("text after the last part of real", "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 gate 1 junk\n",
         False, False),
    Case("unknown forwarding", "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 route\n", False, False),
    Case("uppercase scheduler", V + "\tscheduler=WRR\n", False, False),
    Case("unknown service", V + "\tservice=gopher\n", False, False),
    Case("unknown directive", "frobnicate=1\n" + V, False, False),
    Case("obsolete directive", "connecttimeout=3\n" + V, False, False),
    Case("empty fallbackcommand in a section", V + '\tfallbackcommand=""\n', False, False),
    Case("zero checktimeout", "checktimeout=0\n" + V, False, False),
    Case("IPv6 in virtual=", "virtual=[::1]:80\n\treal=[::1]:80 gate\n", False, False),
    Case("real6 in virtual=", "virtual=127.0.0.1:80\n\treal6=[::1]:80 gate\n", False, False),
    Case("backwards range", "virtual=127.0.0.1:80\n\treal=127.0.0.9->127.0.0.2:80 gate\n", False, False),
    Case("empty request", V + '\trequest=""\n', False, False),
    Case("none with another status", "emailalertstatus=none,starting\n" + V, False, False),
    Case("fwm protocol on an address", V + "\tprotocol=fwm\n", False, False),
    Case("yes/no misspelt", "autoreload=true\n" + V, False, False),
    Case("no forwarding method", "virtual=127.0.0.1:80\n\treal=127.0.0.2:80\n", False, False),
]

# ldirectord runs these and healthd refuses them, on purpose: each is in the README with its reason.
DELIBERATE = {
    "weight above 65535": "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 gate 70000\n",
    "receive only Perl can run": V + '\treceive="a\\Kb"\n',
    "http_proxy without an absolute URL": "virtual=127.0.0.1:3128\n\treal=127.0.0.2:3128 gate\n",
    "a range of more than 4096 addresses": "virtual=127.0.0.1:80\n\treal=10.0.0.1->10.0.16.1:80 gate\n\t"
                                           "checktype=off\n",
    "unknown scheduler flag": V + "\tschedflags=Flag!\n",
    "port 0 without persistence": "virtual=127.0.0.1:0\n\treal=127.0.0.2:80 masq\n",
    "non-contiguous netmask": V + "\tpersistent=60\n\tnetmask=255.0.255.0\n",
    "fwmark real without a port, connect check": "virtual=7\n\treal=127.0.0.2 gate\n\tchecktype=connect\n",
    "check URL host that does not resolve": "virtual=127.0.0.1:80\n\treal=127.0.0.2:80 gate 1 "
                                            '"http://nosuchhost.invalid/", "x"\n',
}


Verdicts = dict[str, tuple[bool, str]]  # case name -> (ldirectord runs it, what it printed)


def ldirectord_runs(path: Path) -> tuple[bool, str]:
    # PERLIO set: ldirectord re-executes itself to set it otherwise (twice the start-up time)
    done = subprocess.run([LDIRECTORD, str(path), "status"], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "PERLIO": "perlio"})
    assert done.returncode in (2, 3), f"ldirectord status exited {done.returncode}: {done.stderr}"
    return done.returncode == 3, done.stderr


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> Verdicts:
    """ldirectord's verdict on every file (run four at a time: each is a Perl start, ~0.5 s)."""
    base = tmp_path_factory.mktemp("ldirectord")
    files = {}
    for n, (name, text) in enumerate([(c.name, c.text) for c in CASES] + list(DELIBERATE.items())):
        path = base / f"case{n}.cf"
        # a logfile of its own, so that ldirectord writes nothing to /var/log
        path.write_text(f'logfile="{base}/ldirectord.log"\n' + text)
        files[name] = path
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(files, pool.map(ldirectord_runs, files.values()), strict=True))
    return results


def healthd_runs(text: str) -> tuple[bool, list[str]]:
    try:
        config = parse_text('logfile="/tmp/ldirectord.log"\n' + text, "t.cf")
    except ConfigError as exc:
        return False, [str(i) for i in exc.issues]
    return True, [str(w) for w in config.warnings]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_healthd_refuses_only_what_ldirectord_refuses(case: Case, verdicts: Verdicts) -> None:
    ld_runs, ld_said = verdicts[case.name]
    assert ld_runs == case.ldirectord_runs, f"ldirectord: {ld_said}"
    runs, said = healthd_runs(case.text)
    assert runs == case.healthd_runs, said
    assert runs or not ld_runs, f"healthd refuses a file ldirectord runs: {said}"
    if case.warning:
        assert any(case.warning in w and w.startswith("t.cf:") for w in said), said


@pytest.mark.parametrize("name", sorted(DELIBERATE))
def test_deliberate_refusals_are_files_ldirectord_runs(name: str, verdicts: Verdicts) -> None:
    """These stay listed only while they are true: ldirectord runs the file, healthd refuses it."""
    assert verdicts[name][0], verdicts[name][1]
    assert not healthd_runs(DELIBERATE[name])[0]


def test_a_logfile_ldirectord_cannot_open_fails_check_config(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-dir" / "ldirectord.log"
    path = tmp_path / "t.cf"
    path.write_text(f'logfile="{missing}"\n' + V)
    assert not ldirectord_runs(path)[0]  # ldirectord refuses to start with it
    assert check_config([str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1: cannot open logfile {missing}: its directory {missing.parent} does not exist" in err
    assert parse_text(path.read_text(), str(path)).settings.logfile == str(missing)  # the daemon still runs
