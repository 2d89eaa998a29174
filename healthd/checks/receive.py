"""Matching a check's `receive` pattern against what a real server sent, with compiled patterns cached.

The config layer has already translated ldirectord's Perl regex into Python syntax
(CheckSpec.receive_re). Thousands of reals usually share a handful of patterns, so
each pattern is compiled once and reused by every check run.
"""

from __future__ import annotations

import functools
import re


class BadPattern(ValueError):
    """A receive pattern that Python's `re` cannot compile."""


@functools.lru_cache(maxsize=4096)
def compiled(pattern: str) -> re.Pattern[str]:
    """The compiled form of `pattern`; raises BadPattern with the reason."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BadPattern(f"receive pattern {pattern!r} does not compile: {exc}") from None


def decode(data: bytes) -> str:
    """Bytes from a server as text: UTF-8 where it is, U+FFFD where it is not (never fails)."""
    return data.decode("utf-8", "replace")


def matches(pattern: str | None, text: str) -> bool:
    """True when `pattern` is found anywhere in `text` (search, not match); None matches anything."""
    if pattern is None:
        return True
    return compiled(pattern).search(text) is not None
