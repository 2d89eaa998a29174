"""Helpers for the config tests: parse text with a fake resolver (no DNS), collect messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from healthd.config import Config, ConfigError, parse_text

ROOT = Path(__file__).resolve().parents[3]

# Names tests may use; anything else is "unresolvable" without touching DNS.
HOSTS = {
    ("localhost", 4): "127.0.0.1",
    ("localhost", 6): "::1",
    ("web1.test", 4): "10.0.0.21",
    ("web3.test", 4): "10.0.0.23",
    ("www.test", 4): "10.0.0.80",
    ("sql01", 4): "10.1.0.1",
    ("sql03", 4): "10.1.0.3",
    ("v6.test", 6): "2001:db8::99",
}


def fake_resolver(host: str, family: int) -> str | None:
    return HOSTS.get((host, family))


def shared_dir() -> Path:
    """The read-only `shared` folder: the repository's sibling (as in CI), else $HEALTHD_SHARED,
    else /work/shared."""
    for candidate in (ROOT.parent / "shared", Path(os.environ.get("HEALTHD_SHARED", "/nonexistent")),
                      Path("/work/shared")):
        if (candidate / "data" / "configs").is_dir():
            return candidate
    raise AssertionError("cannot find the shared folder beside the repository (../shared)")


def cfg(text: str) -> Config:
    return parse_text(text, "test.cf", resolver=fake_resolver)


def problems(text: str) -> list[str]:
    """Every error as `LINE: message`; fails the test if the text is valid."""
    with pytest.raises(ConfigError) as info:
        cfg(text)
    for issue in info.value.issues:
        assert issue.path == "test.cf"
    return [f"{i.line}: {i.message}" for i in info.value.issues]


def one_virtual(body: str, head: str = "virtual=10.0.0.1:80", globals_: str = "") -> Config:
    return cfg(f"{globals_}\n{head}\n" + "".join(f"\t{line}\n" for line in body.strip().splitlines()))
