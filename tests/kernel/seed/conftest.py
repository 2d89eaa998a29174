"""Fixtures of the seed lab experiments: a lab torn down after each test, and the experiment reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kernel.seed.topology import Lab

# Each experiment's short report (requests per real, seconds to remove and restore),
# printed again at the end of the session so that `pytest -q` without -s shows them too.
REPORTS: list[str] = []


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    def add(*lines: str) -> None:
        text = "\n".join([f"{request.node.name}:", *(f"  {line}" for line in lines)])
        print(f"\n{text}")
        REPORTS.append(text)

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTS:
        terminalreporter.write_sep("=", "seed lab reports")
        for text in REPORTS:
            terminalreporter.write_line(text)
