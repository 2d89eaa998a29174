"""carry_over: which virtuals a reload changed, and the old objects of the ones it did not."""

from __future__ import annotations

from dataclasses import replace

from healthd.config import parse_text
from healthd.engine.carryover import carry_over
from healthd.engine.policy import service_key

TEXT = """checkinterval=1
quiescent=no

virtual=10.0.0.1:80
\treal=10.1.0.1:80 masq 1
\treal=10.1.0.2:80 masq 1
\tservice=http
\treceive="ok"

virtual=10.0.0.2:80
\treal=10.1.0.3:80 masq 1
\treal=10.1.0.4:80 masq 1
\tservice=http
\treceive="ok"
"""


def keys(config):  # type: ignore[no-untyped-def]
    return [service_key(v) for v in config.virtuals]


def test_the_same_file_changes_nothing_and_keeps_every_object() -> None:
    old, new = parse_text(TEXT, "a.cf"), parse_text(TEXT, "a.cf")
    carried, changed = carry_over(old, new)
    assert changed == set()
    assert all(a is b for a, b in zip(carried.virtuals, old.virtuals, strict=True))


def test_one_weight_changes_its_virtual_only() -> None:
    old = parse_text(TEXT, "a.cf")
    new = parse_text(TEXT.replace("10.1.0.3:80 masq 1", "10.1.0.3:80 masq 5"), "a.cf")
    carried, changed = carry_over(old, new)
    _first, second = keys(new)
    assert changed == {second}
    assert carried.virtuals[0] is old.virtuals[0]
    assert carried.virtuals[1] is new.virtuals[1] and carried.virtuals[1].reals[0].weight == 5


def test_a_line_added_above_shifts_line_numbers_but_changes_no_plan() -> None:
    old = parse_text(TEXT, "a.cf")
    new = parse_text("# a comment\n" + TEXT, "a.cf")
    carried, changed = carry_over(old, new)
    assert changed == set()
    for was, now, parsed in zip(old.virtuals, carried.virtuals, new.virtuals, strict=True):
        assert now == parsed  # the new line numbers
        assert now.line == was.line + 1
        # the check identities are the old objects: every lookup of them stays on the identity path
        assert all(a.check is b.check for a, b in zip(was.reals, now.reals, strict=True))


def test_new_global_settings_replan_every_virtual() -> None:
    old = parse_text(TEXT, "a.cf")
    new = parse_text(TEXT.replace("quiescent=no", "quiescent=no\nreaddquiescent=yes"), "a.cf")
    assert old.settings != new.settings
    carried, changed = carry_over(old, new)
    assert changed == set(keys(new))
    # still the old check objects (the line numbers moved by one)
    assert carried.virtuals[0] == new.virtuals[0]
    assert carried.virtuals[0].reals[0].check is old.virtuals[0].reals[0].check


def test_added_and_changed_virtuals_are_changed() -> None:
    old = parse_text(TEXT, "a.cf")
    extra = "\nvirtual=10.0.0.3:80\n\treal=10.1.0.9:80 masq\n\tservice=http\n"
    new = parse_text(TEXT.replace('10.0.0.1:80\n', '10.0.0.1:80\n\tscheduler=rr\n') + extra, "a.cf")
    carried, changed = carry_over(old, new)
    assert changed == {keys(new)[0], keys(new)[2]}
    assert carried.virtuals[1] == new.virtuals[1] and carried.virtuals[1].reals[0].check is \
        old.virtuals[1].reals[0].check
    assert replace(carried, virtuals=new.virtuals) == new
