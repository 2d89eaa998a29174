"""The health state machine: failurecount, recovery on one success, unknown until evidence."""

from __future__ import annotations

import pytest

from healthd.checks.spec import CheckType, Outcome
from healthd.engine.health import HealthBook, State

from .fakes import spec

OK = Outcome(True, "ok", 0.001)
BAD = Outcome(False, "refused", 0.001)

# (failurecount, verdicts as a string of + and -, expected states after each verdict)
CASES = [
    (1, "+", "U"),
    (1, "-", "D"),
    (1, "+-+", "UDU"),
    (3, "---", "??D"),
    (3, "+--+", "UUUU"),
    (3, "+---", "UUUD"),
    (3, "+---+", "UUUDU"),
    (2, "-+--", "?UUD"),
    (2, "+-+-", "UUUU"),  # never two in a row
    (2, "+---", "UUDD"),
]
LETTER = {"U": State.UP, "D": State.DOWN, "?": State.UNKNOWN}


@pytest.mark.parametrize(("failurecount", "verdicts", "expected"), CASES)
def test_state_sequence(failurecount: int, verdicts: str, expected: str) -> None:
    s = spec(failurecount=failurecount)
    book = HealthBook()
    book.track([s])
    got = ""
    for v in verdicts:
        book.record(s, OK if v == "+" else BAD)
        got += next(k for k, st in LETTER.items() if st is book.state(s))
    assert got == expected


def test_transitions_reported_once_with_old_and_new() -> None:
    s = spec()
    clock = iter(range(100, 200)).__next__
    book = HealthBook(clock=lambda: float(clock()))
    book.track([s])
    t1 = book.record(s, OK)
    assert t1 is not None and (t1.old, t1.new) == (State.UNKNOWN, State.UP)
    assert book.record(s, OK) is None
    t2 = book.record(s, BAD)
    assert t2 is not None and (t2.old, t2.new, t2.outcome) == (State.UP, State.DOWN, BAD)
    rec = book.get(s)
    assert rec is not None and rec.since == t2.at and rec.failures == 1 and rec.checks == 3
    assert rec.last is BAD


def test_on_is_up_and_off_is_unknown_without_a_check() -> None:
    on, off = spec(type=CheckType.ON), spec(type=CheckType.OFF)
    book = HealthBook()
    book.track([on, off])
    assert book.state(on) is State.UP
    assert book.state(off) is State.UNKNOWN


def test_track_keeps_known_state_and_forgets_removed() -> None:
    a, b, c = spec("10.0.0.2"), spec("10.0.0.3"), spec("10.0.0.4")
    book = HealthBook()
    book.track([a, b])
    book.record(a, OK)
    book.record(b, BAD)
    book.track([a, c])
    assert book.state(a) is State.UP
    assert book.state(c) is State.UNKNOWN
    assert b not in book and book.state(b) is State.UNKNOWN
    assert book.record(b, OK) is None  # verdicts for a removed identity are dropped
