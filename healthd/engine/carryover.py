"""What a reload changes: the new Config with the objects of every virtual that did not change carried over.

A reload re-parses the whole file, so every Virtual, Real and CheckSpec is a new object even where
nothing changed. Carrying the old objects over makes an unchanged virtual recognisable by identity
(the engine replans, re-adopts and re-syncs only the others) and keeps every lookup of an unchanged
check identity (health, scheduler, first round) on the fast identity path. A virtual that differs
only in line numbers (a line added or removed above it) counts as unchanged: it keeps its check
objects and takes the new line numbers. No I/O, no clock: a pure function of the two configs.
"""

from __future__ import annotations

from dataclasses import fields, replace
from operator import attrgetter

from healthd.config.model import Config, Real, Virtual
from healthd.engine.policy import service_key
from healthd.ipvs.model import ServiceKey

# every field that equality compares, less the source line (and, for a virtual, its reals)
_virtual_fields = attrgetter(*(f.name for f in fields(Virtual)
                               if f.compare and f.name not in ("line", "reals")))
_real_fields = attrgetter(*(f.name for f in fields(Real) if f.compare and f.name != "line"))


def _with_line(real: Real, line: int) -> Real:
    return Real(*_real_fields(real), line)  # three times quicker than dataclasses.replace


assert [f.name for f in fields(Real) if f.compare][-1] == "line"  # _with_line's argument order


def _same_but_lines(old: Virtual, new: Virtual) -> bool:
    if len(old.reals) != len(new.reals) or _virtual_fields(old) != _virtual_fields(new):
        return False
    return all(a is b or _real_fields(a) == _real_fields(b)
               for a, b in zip(old.reals, new.reals, strict=True))


def carry_over(old: Config, new: Config) -> tuple[Config, set[ServiceKey]]:
    """`new` with the unchanged virtuals of `old` in place of their copies, and the keys of the
    virtuals that are new or changed (every one when the global settings changed: they feed
    every virtual's plan)."""
    before = {service_key(v): v for v in old.virtuals}
    settings_changed = old.settings != new.settings
    virtuals: list[Virtual] = []
    changed: set[ServiceKey] = set()
    for virtual in new.virtuals:
        key = service_key(virtual)
        prev = before.get(key)
        if prev is None or not _same_but_lines(prev, virtual):
            virtuals.append(virtual)
            changed.add(key)
            continue
        if prev.line != virtual.line or any(a.line != b.line for a, b in zip(prev.reals, virtual.reals,
                                                                              strict=True)):
            prev = replace(prev, line=virtual.line, reals=tuple(
                a if a.line == b.line else _with_line(a, b.line) for a, b in zip(prev.reals, virtual.reals,
                                                                                   strict=True)))
        virtuals.append(prev)
        if settings_changed:
            changed.add(key)
    return replace(new, virtuals=tuple(virtuals)), changed
