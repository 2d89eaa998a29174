"""The contract every IPVS table implements: the kernel over netlink, or the in-memory table.

One contract test suite runs against both, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from healthd.ipvs.model import Operation, Table


class IPVSError(Exception):
    """A table operation failed. The message names the operation and the object."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


class AlreadyExists(IPVSError):
    """EEXIST: the service or destination is already there."""


class NotFound(IPVSError):
    """ENOENT/ESRCH: the service or destination is not there."""


class Unavailable(IPVSError):
    """The kernel has no IPVS (module missing), or we lack the privilege to use it."""


class Backend(Protocol):
    """An IPVS table."""

    async def dump(self) -> Table:
        """The whole table, every service and destination, as it is now."""
        ...

    async def apply(self, op: Operation) -> None:
        """Carry out one operation; raise AlreadyExists, NotFound or IPVSError."""
        ...

    async def apply_all(self, ops: Sequence[Operation]) -> list[IPVSError | None]:
        """Carry out `ops` in order, going on after a failure; the error of each, None if it worked.

        The kernel table sends them in batches, far faster than one apply() each.
        """
        ...

    async def close(self) -> None:
        ...
