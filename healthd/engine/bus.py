"""The one plug-in point for daemon features: observers subscribe to the engine's typed events here.

    bus.subscribe(observer)                      # every routine event (not CheckDone)
    bus.subscribe(observer, events.RealChanged)  # only these kinds
    bus.subscribe(observer, events.CheckDone)    # per-check results: only built while subscribed

An observer is a plain callable taking one event. It runs synchronously on the event
loop, in subscription order, so it must be quick: record, schedule its own task, return.
An observer that raises is logged and skipped; the others and the engine carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from healthd.engine.events import ROUTINE, CheckDone, Event

log = logging.getLogger("healthd.engine")

Observer = Callable[[Event], None]


class EventBus:
    """Fans each event out to the observers subscribed to its kind."""

    def __init__(self) -> None:
        # tuples, replaced on (un)subscribe, so an observer may unsubscribe while an event is delivered
        self._observers: dict[type, tuple[Observer, ...]] = {}

    def subscribe(self, observer: Observer, *kinds: type[Event]) -> Callable[[], None]:
        """Deliver events of `kinds` (default: every routine kind) to `observer`; returns the unsubscribe."""
        chosen = kinds or ROUTINE
        for kind in chosen:
            self._observers[kind] = (*self._observers.get(kind, ()), observer)

        def unsubscribe() -> None:
            for kind in chosen:
                rest = tuple(o for o in self._observers.get(kind, ()) if o is not observer)
                if rest:
                    self._observers[kind] = rest
                else:
                    self._observers.pop(kind, None)

        return unsubscribe

    def wants(self, kind: type[Event]) -> bool:
        """Whether anyone listens to `kind`: emitters skip building events nobody reads."""
        return kind in self._observers

    @property
    def wants_checks(self) -> bool:
        """Shorthand for wants(CheckDone), on the engine's hot path."""
        return CheckDone in self._observers

    def emit(self, event: Event) -> None:
        for observer in self._observers.get(type(event), ()):
            try:
                observer(event)
            except Exception:
                log.exception("observer %r failed on %r", observer, event)
