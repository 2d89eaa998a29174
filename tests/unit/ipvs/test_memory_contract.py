"""The shared IPVS contract suite against the in-memory table (the kernel runs it in tests/kernel)."""

from collections.abc import AsyncIterator

import pytest

from healthd.ipvs.memory import MemoryTable
from tests.unit.ipvs.contract import ContractSuite


class TestMemoryTable(ContractSuite):
    @pytest.fixture
    async def table(self) -> AsyncIterator[MemoryTable]:
        t = MemoryTable()
        yield t
        await t.close()
