"""Fixtures of the safety lab: built once per session; each test's short report printed at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kernel.safety.lab import SafetyLab, build
from tests.kernel.seed.topology import Lab


@pytest.fixture(scope="session")
def safety_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SafetyLab]:
    lab = Lab(tmp_path_factory.mktemp("safety-lab"))
    try:
        yield build(lab)
    finally:
        lab.close()
