"""Fixtures of the safety lab: built once per session; each test's short report printed at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.kernel.safety.lab import SafetyLab, build
from tests.kernel.seed.topology import Lab

REPORTS: list[str] = []


@pytest.fixture(scope="session")
def safety_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SafetyLab]:
    lab = Lab(tmp_path_factory.mktemp("safety-lab"))
    try:
        yield build(lab)
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
        terminalreporter.write_sep("=", "safety lab reports")
        for text in REPORTS:
            terminalreporter.write_line(text)
