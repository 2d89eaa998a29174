"""debian/ and man/ agree with the code: the package's version, every verb and option in healthd(8)."""

from __future__ import annotations

import re
from pathlib import Path

from healthd import __version__, cli

ROOT = Path(__file__).resolve().parents[2]
MAN8 = (ROOT / "man" / "man8" / "healthd.8").read_text()


def test_changelog_version_is_healthds() -> None:
    first = (ROOT / "debian" / "changelog").read_text().splitlines()[0]
    assert re.match(rf"healthd \({re.escape(__version__)}\) ", first), first


def test_man_page_names_every_verb_and_option() -> None:
    text = MAN8.replace("\\-", "-")
    for verb in (*cli.VERBS, "check-config", "check-install", "demo"):
        assert re.search(rf"\b{re.escape(verb)}\b", text), verb
    for option in re.findall(r"(--?[a-z][a-z-]*)", cli.USAGE):
        assert option in text, option
    assert f"\"healthd {__version__}\"" in MAN8  # the .TH line


def test_man_page_lists_every_exit_status_the_cli_uses() -> None:
    listed = set(re.findall(r"^\.B (\d+)$", MAN8, re.M))
    assert {str(cli.EXIT_USAGE), str(cli.EXIT_CONFIG), str(cli.EXIT_NOT_RUNNING), "0", "1", "3"} <= listed


def test_units_and_man_page_agree_on_files() -> None:
    for path in ("/etc/default/healthd", "/run/healthd.keep-table", "/etc/ha.d/ldirectord.cf"):
        assert path.replace("-", "\\-") in MAN8 or path in MAN8, path
