"""Translate a Perl `receive` regex into Python `re` syntax, or say which construct cannot be.

ldirectord matches `receive` with Perl (`$page =~ /$receive/`). The pattern is a
run-time string, so Perl string escapes (\\Q, \\U, \\l, ...) and variable
interpolation never apply; only regex syntax does. Most of that syntax is shared
with Python. The translator rewrites the parts that differ and refuses the parts
Python cannot express, so that a `receive` never silently means something else.
"""

from __future__ import annotations

import functools
import re
import warnings

# POSIX bracket classes, as ASCII sets Python understands inside [...].
_POSIX_CLASSES: dict[str, str] = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r" \t\n\r\f\v",
    "blank": r" \t",
    "punct": r"!-/:-@\[-`{-~",
    "xdigit": "0-9A-Fa-f",
    "word": r"\w",
    "cntrl": r"\x00-\x1f\x7f",
    "graph": r"!-~",
    "print": r" -~",
    "ascii": r"\x00-\x7f",
}

_VERTICAL = r"\n\x0b\f\r\x85\u2028\u2029"
_HORIZONTAL = r" \t\xa0\u1680\u180e\u2000-\u200a\u202f\u205f\u3000"

# Escapes that mean the same in both dialects, outside and inside a class.
_SAME_ESCAPES = set("dDwWsSbBAtnrfa0123456789")
_SAME_IN_CLASS = set("dDwWstnrfa0")

# Escapes Perl has and Python lacks, by what they are called in an error message.
_UNSUPPORTED_ESCAPES: dict[str, str] = {
    "K": r"\K (keep left)",
    "G": r"\G (end of previous match)",
    "X": r"\X (extended grapheme cluster)",
    "p": r"\p{...} (Unicode property)",
    "P": r"\P{...} (Unicode property)",
    "C": r"\C (single byte)",
    "Q": r"\Q...\E (quoting, a string escape with no effect in a run-time pattern)",
    "E": r"\E (end of \Q, \U or \L)",
    "U": r"\U (upper-casing, a string escape)",
    "L": r"\L (lower-casing, a string escape)",
    "u": r"\u (upper-case next, a string escape)",
    "l": r"\l (lower-case next, a string escape)",
    "b{": r"\b{...} (Unicode boundary)",
    "B{": r"\B{...} (Unicode boundary)",
}


class PerlRegexError(ValueError):
    """The pattern cannot be expressed in Python `re`; the message names the construct."""


class _Translator:
    """One pass over the pattern; `out` collects Python syntax."""

    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0
        self.out: list[str] = []
        # One entry per open group: how many extra ")" to emit when it closes,
        # for inline modifiers `(?i)` that Python only allows scoped.
        self.groups: list[int] = []
        self.top_extra = 0
        self.group_count = 0
        self.extended = False

    def fail(self, construct: str) -> PerlRegexError:
        return PerlRegexError(f"{construct} at offset {self.pos} has no Python equivalent")

    def peek(self, n: int = 1) -> str:
        return self.src[self.pos : self.pos + n]

    def run(self) -> str:
        src = self.src
        while self.pos < len(src):
            c = src[self.pos]
            if c == "\\":
                self.escape()
            elif c == "[":
                self.char_class()
            elif c == "(":
                self.open_group()
            elif c == ")":
                self.pos += 1
                if self.groups:
                    self.out.append(")" * (self.groups.pop() + 1))
                else:
                    self.out.append(")")  # unbalanced: let re.compile say so
            elif c == "#" and self.extended:
                end = src.find("\n", self.pos)
                self.pos = len(src) if end < 0 else end
            else:
                self.out.append(c)
                self.pos += 1
        self.out.append(")" * self.top_extra)
        return "".join(self.out)

    # --- escapes outside classes -------------------------------------------------

    def escape(self) -> None:
        src = self.src
        if self.pos + 1 >= len(src):
            raise PerlRegexError("a trailing backslash ends the pattern")
        e = src[self.pos + 1]
        two = src[self.pos + 1 : self.pos + 3]
        if two in _UNSUPPORTED_ESCAPES:
            raise self.fail(_UNSUPPORTED_ESCAPES[two])
        if e in _UNSUPPORTED_ESCAPES:
            raise self.fail(_UNSUPPORTED_ESCAPES[e])
        self.pos += 2
        if e == "z":
            self.out.append(r"\Z")
        elif e == "Z":
            self.out.append(r"(?=\n?\Z)")
        elif e == "h":
            self.out.append(f"[{_HORIZONTAL}]")
        elif e == "H":
            self.out.append(f"[^{_HORIZONTAL}]")
        elif e == "v":
            self.out.append(f"[{_VERTICAL}]")
        elif e == "V":
            self.out.append(f"[^{_VERTICAL}]")
        elif e == "R":
            self.out.append(rf"(?:\r\n|[{_VERTICAL}])")
        elif e == "N":
            if self.peek() == "{":
                raise self.fail(r"\N{...} (named character)")
            self.out.append(r"[^\n]")
        elif e in ("k", "g"):
            self.backref(e)
        elif e in "xoec":
            self.out.append(self.char_escape(e))
        elif e in _SAME_ESCAPES:
            self.out.append("\\" + e)
        elif e.isalnum() or e == "_":
            self.pos -= 1
            raise self.fail(f"\\{e} (unknown escape)")
        else:
            self.out.append(re.escape(e))

    def char_escape(self, e: str) -> str:
        """\\x.., \\x{...}, \\o{...}, \\e, \\cX -> a Python escape for the same character."""
        src = self.src
        if e == "e":
            return r"\x1b"
        if e == "c":
            if self.pos >= len(src):
                raise self.fail(r"\c (control character) without a letter")
            ch = src[self.pos]
            self.pos += 1
            return f"\\x{ord(ch.upper()) ^ 64:02x}"
        if e == "o":
            m = re.compile(r"\{([0-7]+)\}").match(src, self.pos)
            if not m:
                raise self.fail(r"\o without {octal digits}")
            self.pos = m.end()
            return self.codepoint(int(m.group(1), 8))
        # e == "x"
        m = re.compile(r"\{\s*([0-9A-Fa-f]*)\s*\}").match(src, self.pos)
        if m:
            self.pos = m.end()
            return self.codepoint(int(m.group(1) or "0", 16))
        m = re.compile(r"[0-9A-Fa-f]{1,2}").match(src, self.pos)
        if m:
            self.pos = m.end()
            return self.codepoint(int(m.group(0), 16))
        return r"\x00"  # Perl reads a bare \x as NUL

    def codepoint(self, cp: int) -> str:
        if cp > 0x10FFFF:
            raise self.fail(f"character code {cp:#x} beyond Unicode")
        return f"\\U{cp:08x}"

    def backref(self, e: str) -> None:
        src = self.src
        m = re.compile(r"\{(-?\d+)\}|(-?\d+)").match(src, self.pos) if e == "g" else None
        if m:
            self.pos = m.end()
            n = int(m.group(1) or m.group(2))
            if n < 0:
                n = self.group_count + 1 + n
                if n < 1:
                    raise self.fail(rf"\g{{{n}}} (relative back-reference before any group)")
            self.out.append(f"(?:\\{n})")
            return
        m = re.compile(r"<(\w+)>|\{(\w+)\}|'(\w+)'").match(src, self.pos)
        if not m:
            raise self.fail(f"\\{e} (back-reference) without a group name or number")
        self.pos = m.end()
        self.out.append(f"(?P={m.group(1) or m.group(2) or m.group(3)})")

    # --- character classes ---------------------------------------------------------

    def char_class(self) -> None:
        src = self.src
        self.pos += 1
        parts = ["["]
        if self.peek() == "^":
            parts.append("^")
            self.pos += 1
        first = True
        while True:
            if self.pos >= len(src):
                raise PerlRegexError("a character class '[' is never closed")
            c = src[self.pos]
            if c == "]" and not first:
                self.pos += 1
                break
            first = False
            if c == "[" and self.peek(2) in ("[:", "[=", "[."):
                parts.append(self.posix_class())
            elif c == "\\":
                parts.append(self.class_escape())
            elif c in "[&~|-":
                # Python warns (and may one day act) on nested-set syntax; '-' is a
                # range unless first/last, so only escape it when it is literal.
                if c == "-" and self.is_range_dash(parts):
                    parts.append("-")
                else:
                    parts.append("\\" + c)
                self.pos += 1
            elif c == "]":
                parts.append(r"\]")
                self.pos += 1
            else:
                parts.append(c)
                self.pos += 1
        parts.append("]")
        self.out.append("".join(parts))

    def is_range_dash(self, parts: list[str]) -> bool:
        prev = parts[-1] if parts else ""
        nxt = self.src[self.pos + 1 : self.pos + 2]
        return prev not in ("[", "^", "-") and nxt not in ("]", "") and not prev.startswith("[:")

    def posix_class(self) -> str:
        src = self.src
        m = re.compile(r"\[([:=.])(\^?)(\w*)\1\]").match(src, self.pos)
        if not m:
            # A lone '[' inside a class is a literal in Perl.
            self.pos += 1
            return r"\["
        kind, negated, name = m.group(1), m.group(2), m.group(3)
        if kind != ":":
            raise self.fail(f"[{kind}{name}{kind}] (collating element)")
        if name not in _POSIX_CLASSES:
            raise self.fail(f"[:{name}:] (unknown POSIX class)")
        if negated:
            raise self.fail(f"[:^{name}:] (negated POSIX class inside a set)")
        self.pos = m.end()
        return _POSIX_CLASSES[name]

    def class_escape(self) -> str:
        src = self.src
        if self.pos + 1 >= len(src):
            raise PerlRegexError("a trailing backslash ends the pattern")
        e = src[self.pos + 1]
        if e in _UNSUPPORTED_ESCAPES:
            raise self.fail(_UNSUPPORTED_ESCAPES[e])
        self.pos += 2
        if e in "xoec":
            return self.char_escape(e)
        if e == "h":
            return _HORIZONTAL
        if e == "v":
            return _VERTICAL
        if e in "HVRN":
            self.pos -= 2
            raise self.fail(f"\\{e} inside a character class")
        if e == "b":
            return r"\x08"
        if e in _SAME_IN_CLASS or e.isdigit():
            if e.isdigit() and e != "0":
                m = re.compile(r"[0-7]{0,2}").match(src, self.pos)
                digits = e + (m.group(0) if m else "")
                if not all(ch in "01234567" for ch in digits):
                    self.pos -= 2
                    raise self.fail(f"\\{digits} inside a character class")
                self.pos += len(digits) - 1
                return self.codepoint(int(digits, 8))
            return "\\" + e
        if e.isalnum() or e == "_":
            self.pos -= 2
            raise self.fail(f"\\{e} (unknown escape)")
        return "\\" + e

    # --- groups ----------------------------------------------------------------------

    def open_group(self) -> None:
        src = self.src
        self.pos += 1
        if self.peek() == "*":
            raise self.fail("(*VERB) (backtracking control)")
        if self.peek() != "?":
            self.group_count += 1
            self.groups.append(0)
            self.out.append("(")
            return
        rest = src[self.pos + 1 :]
        for prefix in (":", "=", "!", "<=", "<!", ">", "#"):
            if rest.startswith(prefix):
                if prefix == "#":
                    end = src.find(")", self.pos)
                    if end < 0:
                        raise PerlRegexError("a comment group '(?#' is never closed")
                    self.pos = end + 1
                    return
                self.pos += 1 + len(prefix)
                self.groups.append(0)
                self.out.append("(?" + prefix)
                return
        m = re.compile(r"\?(?:P?<(\w+)>|'(\w+)')").match(src, self.pos)
        if m:
            self.pos = m.end()
            self.group_count += 1
            self.groups.append(0)
            self.out.append(f"(?P<{m.group(1) or m.group(2)}>")
            return
        m = re.compile(r"\?P=(\w+)\)").match(src, self.pos)
        if m:
            self.pos = m.end()
            self.out.append(f"(?P={m.group(1)})")
            return
        if rest.startswith("("):
            self.conditional()
            return
        if rest.startswith(("{", "?{")):
            raise self.fail("(?{ code }) (embedded Perl code)")
        if rest.startswith(("R)", "&", "P>")) or re.match(r"[+-]?\d", rest):
            raise self.fail("(?R), (?N) or (?&name) (recursion)")
        m = re.compile(r"\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])").match(src, self.pos)
        if m:
            self.modifiers(m.group(1), m.group(2) or "", m.group(3), m.end())
            return
        if rest.startswith("|"):
            raise self.fail("(?|...) (branch reset)")
        if rest.startswith("^"):
            raise self.fail("(?^...) (caret modifiers)")
        raise self.fail(f"(?{rest[:1]} (unknown group)")

    def conditional(self) -> None:
        m = re.compile(r"\?\((\d+|<(\w+)>|'(\w+)'|\w+)\)").match(self.src, self.pos)
        if not m:
            raise self.fail("(?(condition)...) with a look-around or recursion test")
        ref = m.group(2) or m.group(3) or m.group(1)
        if ref.startswith("R") or ref == "DEFINE":
            raise self.fail(f"(?({ref})...) (recursion condition)")
        self.pos = m.end()
        self.groups.append(0)
        self.out.append(f"(?({ref})")

    def modifiers(self, on: str, off: str, end: str, after: int) -> None:
        for flag in on + off:
            if flag not in "imsx":
                raise self.fail(f"the /{flag} modifier")
        if "x" in on:
            self.extended = True
        if "x" in off:
            self.extended = False
        python = on + ("-" + off if off else "")
        self.pos = after
        if end == ":":
            self.groups.append(0)
            self.out.append(f"(?{python}:")
            return
        if not python or python == "-":
            return
        # `(?i)` in Perl applies to the end of the enclosing group; Python only
        # accepts it scoped, so open a scoped group that closes with the enclosing one.
        self.out.append(f"(?{python}:")
        if self.groups:
            self.groups[-1] += 1
        else:
            self.top_extra += 1


@functools.lru_cache(maxsize=1024)  # a pure function; a file repeats its receive= per virtual or real
def translate(perl: str) -> str:
    """Return Python `re` syntax meaning the same as the Perl pattern `perl`.

    Raises PerlRegexError naming the construct when there is no equivalent, or
    quoting Python's complaint when the translated pattern does not compile.
    """
    python = _Translator(perl).run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            re.compile(python)
        except re.error as exc:
            raise PerlRegexError(f"not a valid regular expression: {exc.msg}") from None
        except (FutureWarning, DeprecationWarning, RecursionError, OverflowError) as exc:
            raise PerlRegexError(f"not a usable regular expression: {exc}") from None
    return python
