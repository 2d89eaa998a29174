"""The daemon feature that keeps announced routes in line with the IPVS table (an observer of the engine).

It listens to one event, TableApplied (a desired table reached the kernel): the
route follows what the kernel's table can serve, never a check result that is
not applied yet. The device is made only once some virtual has announce=yes.
"""

from __future__ import annotations

from collections.abc import Callable

from healthd.announce.announcer import Announcer
from healthd.announce.serving import serving
from healthd.daemon.lifecycle import EngineLike
from healthd.engine import events


class AnnounceFeature:
    def __init__(self, make: Callable[[], Announcer] = Announcer) -> None:
        self._make = make
        self.announcer: Announcer | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self, engine: EngineLike) -> None:
        self._unsubscribe = engine.events.subscribe(self.on_applied, events.TableApplied)

    def on_applied(self, event: events.Event) -> None:
        if not isinstance(event, events.TableApplied):
            return
        wanted = serving(event)
        if self.announcer is None:
            if not wanted:
                return  # nothing announced, ever: no device
            self.announcer = self._make()
        # a few netlink messages to our own kernel: quick enough for an observer
        self.announcer.update(wanted)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.announcer is not None:
            self.announcer.close()
