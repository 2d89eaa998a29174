"""Perl `receive` regexes: translated to Python `re` with the same meaning, or refused by name."""

from __future__ import annotations

import re

import pytest

from healthd.config.regex import PerlRegexError, translate

# (perl pattern, text, should match)
SAME_MEANING = [
    ("ok", "it is ok", True),
    ("Test Page", "a Test Page here", True),
    (r"^HTTP/1\.[01] 200", "HTTP/1.1 200 OK", True),
    (r"200 OK\z", "200 OK\n", False),
    (r"200 OK\Z", "200 OK\n", True),
    (r"200 OK$", "200 OK\n", True),
    (r"\Astart", "start", True),
    (r"[[:digit:]]+ items", "42 items", True),
    (r"[[:alpha:]]{3}", "12ab", False),
    (r"[^[:space:]]+@", "me@host", True),
    (r"\x{41}\x42", "AB", True),
    (r"\e\[0m", "\x1b[0m", True),
    (r"\cA", "\x01", True),
    (r"\o{101}", "A", True),
    (r"(?<word>ab)\k<word>", "abab", True),
    (r"(?'w'x)\k{w}", "xx", True),
    (r"(a)\g1\g{-1}", "aaa", True),
    (r"a(?i)b", "aB", True),
    (r"a(?i)b", "AB", False),
    (r"(x(?i)y)z", "xYz", True),
    (r"(x(?i)y)z", "xYZ", False),
    (r"(?i:OK)", "ok", True),
    (r"(?x) o k # a comment", "ok", True),
    (r"\h+\R", " \t\r\n", True),
    (r"\N+", "abc", True),
    (r"a++b", "aab", True),
    (r"(?>a+)b", "aab", True),
    (r"[]x]", "]", True),
    (r"[a&&b]", "&", True),
    (r"[~|]", "|", True),
    (r"#notacomment", "#notacomment", True),
    (r"\.", "x", False),
    (r"(?#remark)ok", "ok", True),
    (r"(a)?(?(1)b|c)", "c", True),
]


@pytest.mark.parametrize(("perl", "text", "matches"), SAME_MEANING)
def test_translation_keeps_the_meaning(perl: str, text: str, matches: bool) -> None:
    assert bool(re.search(translate(perl), text)) is matches


UNTRANSLATABLE = [
    (r"foo\K", r"\K"),
    (r"\Gx", r"\G"),
    (r"\p{Lu}", r"\p{...}"),
    (r"\X", r"\X"),
    (r"\Qa.b\E", r"\Q"),
    (r"\Uabc", r"\U"),
    (r"(?{ print 1 })", "embedded Perl code"),
    (r"(?R)", "recursion"),
    (r"(?1)", "recursion"),
    (r"(?&name)", "recursion"),
    (r"(?|(a)|(b))", "branch reset"),
    (r"(*FAIL)", "backtracking control"),
    (r"(?^i:x)", "caret"),
    (r"(?n)x", "/n modifier"),
    (r"\y", r"\y (unknown escape)"),
    (r"[[:foo:]]", "[:foo:]"),
    (r"\N{U+41}", r"\N{...}"),
    (r"(?(R)a|b)", "recursion"),
]


@pytest.mark.parametrize(("perl", "named"), UNTRANSLATABLE)
def test_untranslatable_constructs_are_named(perl: str, named: str) -> None:
    with pytest.raises(PerlRegexError) as info:
        translate(perl)
    assert named in str(info.value)


@pytest.mark.parametrize("perl", ["(", "a{2,1}", "[abc", "\\", "*a", "(?P=nope)"])
def test_broken_patterns_are_errors_not_exceptions(perl: str) -> None:
    with pytest.raises(PerlRegexError):
        translate(perl)
