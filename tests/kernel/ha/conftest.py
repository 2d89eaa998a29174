"""The HA labs' reports: each test prints its measured times, repeated at the end of the session."""

from __future__ import annotations

from collections.abc import Callable

import pytest

REPORTS: list[str] = []


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    def add(*lines: str) -> None:
        text = "\n".join([f"{request.node.name}:", *(f"  {line}" for line in lines)])
        print(f"\n{text}")
        REPORTS.append(text)

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTS:
        terminalreporter.write_sep("=", "HA lab reports")
        for text in REPORTS:
            terminalreporter.write_line(text)
