"""maintenancedir: the six name forms, cheap rescans, and name resolution that cannot stall."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from healthd.engine.maintenance import MaintenanceDir, names_of, resolve_names

R1, R2, R3 = ("10.0.0.2", 80), ("10.0.0.3", 80), ("2001:db8::5", 443)
HOSTS = {"10.0.0.2": "web1.example.com", "10.0.0.3": "web2.example.com"}


def test_names_of_has_the_six_forms() -> None:
    assert names_of("10.0.0.2", 80, "web1.example.com") == {
        "10.0.0.2:80", "10.0.0.2", "web1.example.com:80", "web1.example.com", "web1:80", "web1",
    }
    assert names_of("10.0.0.2", 80, None) == {"10.0.0.2:80", "10.0.0.2"}
    assert "[2001:db8::5]:443" in names_of("2001:db8::5", 443, None)


@pytest.mark.parametrize(("filename", "down"), [
    ("10.0.0.2:80", {R1}), ("10.0.0.2", {R1}), ("web1.example.com:80", {R1}), ("web1.example.com", {R1}),
    ("web1:80", {R1}), ("web1", {R1}), ("web1:81", set()), ("10.0.0.22", set()),
    ("[2001:db8::5]:443", {R3}), ("2001:db8::5", {R3}),
])
def test_each_name_form_forces_its_real_down(tmp_path: Path, filename: str, down: set) -> None:  # type: ignore[type-arg]
    (tmp_path / filename).touch()
    m = MaintenanceDir(str(tmp_path), [R1, R2, R3], HOSTS)
    m.scan()
    assert m.down == down


def test_rescan_notices_add_and_remove(tmp_path: Path) -> None:
    m = MaintenanceDir(str(tmp_path), [R1, R2], HOSTS)
    assert not m.scan() and m.down == set()
    (tmp_path / "web2").touch()
    assert m.scan() and m.down == {R2}
    assert not m.scan()  # nothing new
    (tmp_path / "web2").unlink()
    assert m.scan() and m.down == set()


def test_unchanged_settled_directory_is_not_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "10.0.0.2").touch()
    old = time.time() - 60
    os.utime(tmp_path, (old, old))
    m = MaintenanceDir(str(tmp_path), [R1], {})
    m.scan()
    calls = 0
    real_listdir = os.listdir

    def counting(path: str) -> list[str]:
        nonlocal calls
        calls += 1
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", counting)
    for _ in range(5):
        m.scan()
    assert calls == 0 and m.down == {R1}


def test_missing_directory_means_nothing_in_maintenance(tmp_path: Path) -> None:
    m = MaintenanceDir(str(tmp_path / "absent"), [R1], {})
    m.scan()
    assert m.down == set() and "cannot read maintenancedir" in (m.error or "")


def test_names_resolved_later_apply_to_the_last_listing(tmp_path: Path) -> None:
    (tmp_path / "web1").touch()
    m = MaintenanceDir(str(tmp_path), [R1], {})
    m.scan()
    assert m.down == set()
    m.set_reals([R1], HOSTS)
    assert m.down == {R1}


async def test_resolve_names_is_bounded_and_off_the_loop() -> None:
    release = threading.Event()

    def lookup(address: str) -> str | None:
        if address == "10.0.0.9":
            release.wait(10)  # a resolver that hangs
            return "late.example.com"
        return HOSTS.get(address)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.get_running_loop().create_task(ticker())
    t0 = time.monotonic()
    names = await resolve_names(["10.0.0.2", "10.0.0.3", "10.0.0.9", "10.0.0.4"], deadline=0.3, lookup=lookup)
    elapsed = time.monotonic() - t0
    t.cancel()
    release.set()
    assert names == HOSTS
    assert elapsed < 2
    assert ticks > 5  # the loop kept running while the lookup hung
