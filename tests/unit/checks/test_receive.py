"""Matching `receive`: search semantics, None matches all, clear errors, compiled once."""

from __future__ import annotations

import pytest

from healthd.checks.receive import BadPattern, compiled, decode, matches


def test_search_not_match() -> None:
    assert matches("ok", "status: ok\n")
    assert not matches("^ok", "status: ok\n")


def test_none_matches_anything() -> None:
    assert matches(None, "")


def test_bad_pattern_is_a_clear_error() -> None:
    with pytest.raises(BadPattern, match="does not compile"):
        compiled("(unclosed")


def test_patterns_are_compiled_once() -> None:
    assert compiled("healthd-[0-9]+") is compiled("healthd-[0-9]+")


def test_decoding_never_fails() -> None:
    assert decode(b"caf\xc3\xa9 \xff") == "café \ufffd"
