"""successcount (rise) and fastinterval's notion of "undecided": the health state machine's extensions."""

from __future__ import annotations

import pytest

from healthd.checks.spec import Outcome
from healthd.engine.health import HealthBook, State, next_interval, undecided

from .fakes import spec

OK = Outcome(True, "ok", 0.001)
BAD = Outcome(False, "refused", 0.001)
LETTER = {"U": State.UP, "D": State.DOWN, "?": State.UNKNOWN}

# (failurecount, successcount, verdicts, expected states after each verdict)
CASES = [
    (1, 1, "+-+", "UDU"),  # the default: ldirectord's behaviour
    (1, 3, "+", "U"),  # a first verdict needs one pass: start-up is not delayed
    (1, 3, "+-++", "UDDD"),
    (1, 3, "+-+++", "UDDDU"),
    (1, 3, "+-+-+-+-+", "UDDDDDDDD"),  # flapping never comes back
    (1, 3, "+-++-+++", "UDDDDDDU"),  # a failure restarts the count
    (2, 2, "--++", "?DDU"),
    (3, 2, "+--+--", "UUUUUU"),  # failures short of failurecount never take it down
]


@pytest.mark.parametrize(("failurecount", "successcount", "verdicts", "expected"), CASES)
def test_successcount_sequence(failurecount: int, successcount: int, verdicts: str, expected: str) -> None:
    s = spec(failurecount=failurecount, successcount=successcount)
    book = HealthBook()
    book.track([s])
    got = ""
    for v in verdicts:
        book.record(s, OK if v == "+" else BAD)
        got += next(k for k, st in LETTER.items() if st is book.state(s))
    assert got == expected


def test_successcount_one_transition_when_it_returns() -> None:
    s = spec(successcount=3)
    book = HealthBook()
    book.track([s])
    book.record(s, OK)
    assert book.record(s, BAD) is not None
    assert book.record(s, OK) is None and book.record(s, OK) is None
    back = book.record(s, OK)
    assert back is not None and (back.old, back.new) == (State.DOWN, State.UP)


# (failurecount, successcount, verdicts, expected interval after each): interval 10, fastinterval 1
INTERVALS = [
    (1, 1, "+-+", [10, 10, 10]),  # nothing is ever pending
    (3, 1, "+--", [10, 1, 1]),
    (3, 1, "+---", [10, 1, 1, 10]),  # down: decided again
    (3, 1, "+-+", [10, 1, 10]),
    (1, 3, "+-++", [10, 10, 1, 1]),
    (1, 3, "+-+++", [10, 10, 1, 1, 10]),
    (2, 1, "-", [1]),  # a first failure before any verdict is pending too
]


@pytest.mark.parametrize(("failurecount", "successcount", "verdicts", "expected"), INTERVALS)
def test_fastinterval_while_undecided(
    failurecount: int, successcount: int, verdicts: str, expected: list[float]
) -> None:
    s = spec(failurecount=failurecount, successcount=successcount, checkinterval=10.0, fastinterval=1.0)
    book = HealthBook()
    book.track([s])
    got = []
    for v in verdicts:
        book.record(s, OK if v == "+" else BAD)
        got.append(next_interval(s, book.get(s)))
    assert got == expected


def test_fastinterval_off_or_not_faster_keeps_checkinterval() -> None:
    for fast in (0.0, 10.0, 20.0):
        s = spec(failurecount=3, checkinterval=10.0, fastinterval=fast)
        book = HealthBook()
        book.track([s])
        book.record(s, BAD)
        rec = book.get(s)
        assert rec is not None and undecided(s, rec)
        assert next_interval(s, rec) == 10.0
    assert next_interval(spec(fastinterval=0.5), None) == spec().checkinterval
