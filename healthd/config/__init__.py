"""ldirectord.cf -> Config. The public surface: find_config, load, parse_text."""

from __future__ import annotations

from healthd.config.build import build
from healthd.config.lookup import Resolver, find_config, system_resolver
from healthd.config.model import Config, ConfigError, ConfigIssue, Fallback, GlobalSettings, Real, Virtual
from healthd.config.parser import parse

__all__ = [
    "Config", "ConfigError", "ConfigIssue", "Fallback", "GlobalSettings", "Real", "Virtual",
    "find_config", "load", "parse_bytes", "parse_text",
]


def parse_bytes(data: bytes | str, path: str, resolver: Resolver | None = None) -> Config:
    """Parse a whole file's content; ConfigError lists every problem as FILE:LINE: message."""
    config, errors, _warnings = build(parse(data, path), resolver or system_resolver)
    if errors:
        raise ConfigError(errors)
    return config


def parse_text(text: str, path: str, resolver: Resolver | None = None) -> Config:
    """Parse config text as if read from `path` (which only appears in messages)."""
    return parse_bytes(text, path, resolver)


def load(path: str, resolver: Resolver | None = None) -> Config:
    """Read and parse the file at `path`; any problem, including an unreadable file, is a ConfigError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError([ConfigIssue(path, 0, f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_bytes(data, path, resolver)
