"""`monitorfile`: one line per check result, in ldirectord's format, written without blocking the event loop.

    [Thu Dec  3 03:10:09 2026] [4242] negotiate http tcp 10.0.0.2 80 2 masq /ok.html ok [up] HTTP 200

The middle is ldirectord's id of the real's check (check type and service,
protocol, address, port, virtualhost, checkport, weight, forwarding, request,
receive) joined by ":" and then, as ldirectord writes it, with every run of ":"
turned into one space and backslashes removed. The message after the state has
"%", "|", CR and LF escaped as %xx; a check without a message writes "-".

Lines are collected in memory and written by a worker thread every FLUSH_INTERVAL
(no fsync per line, never a write on the event loop). The file is opened in
append mode and reopened on reload (SIGHUP) and when it was rotated away
(logrotate's move or delete), which ldirectord gets from opening it per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from healthd.checks.spec import CheckSpec, Outcome
from healthd.config.model import Config, Real, Virtual

log = logging.getLogger("healthd")

FLUSH_INTERVAL = 0.5  # seconds between writes of the collected lines
PENDING_LIMIT = 4 << 20  # bytes held per file while its disk does not keep up; beyond: dropped

_ESCAPE = re.compile(r"[%|\r\n]")


def _quotemeta(text: str) -> str:
    """Perl's quotemeta: a backslash before every ASCII character that is not a word character."""
    return "".join(c if (c.isalnum() and c.isascii()) or c == "_" else "\\" + c for c in text)


def check_words(virtual: Virtual, real: Real) -> str:
    """ldirectord's real id for the monitorfile, as it prints it there."""
    spec = real.check
    checktype = "combined" if virtual.connect_every else virtual.checktype.value
    if checktype in ("negotiate", "combined"):
        check = f"{checktype}:{virtual.service}"
    elif checktype in ("external", "external-perl"):
        check = f"{checktype}:{spec.command}"
    else:
        check = checktype
    request = spec.request if spec.request.startswith("/") else "/" + spec.request
    checkport = str(spec.port) if spec.port and spec.port != real.port else ""
    ident = ":".join([
        check, virtual.protocol.value, real.address, str(real.port), spec.virtualhost or "", checkport,
        str(real.weight), real.forward.value, _quotemeta(request), _quotemeta(spec.receive),
    ])
    return re.sub(":+", " ", ident).replace("\\", "")


def escape(detail: str) -> str:
    """The message as ldirectord writes it: %, |, CR and LF as %xx; "-" when there is none."""
    if not detail:
        return "-"
    if "%" in detail or "|" in detail or "\n" in detail or "\r" in detail:
        return _ESCAPE.sub(lambda m: f"%{ord(m.group()):02x}", detail)
    return detail


def middle(pid: int, words: str, up: bool) -> str:
    """Everything between the time and the message, fixed per real and state."""
    return f"] [{pid}] {words} [{'up' if up else 'down'}] "


def format_line(when: str, pid: int, words: str, up: bool, detail: str) -> str:
    return f"[{when}{middle(pid, words, up)}{escape(detail)}\n"


@dataclass
class _File:
    path: str
    fd: int | None = None
    ident: tuple[int, int] | None = None  # (st_dev, st_ino) of what fd has open
    pending: list[str] = field(default_factory=list)
    pending_bytes: int = 0
    dropped: int = 0
    error: str | None = None  # last open/write problem, logged once


_Batch = tuple[_File, list[str], int]  # a file, its lines, how many were dropped


@dataclass(frozen=True, slots=True)
class _Target:
    file: _File
    up: str  # middle() of the line when up / down, built once per config
    down: str
    key: tuple[str, str]  # (virtual label, real label), for maintenance


class MonitorFiles:
    def __init__(
        self, config: Config, *, flush_interval: float = FLUSH_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.flush_interval = flush_interval
        self._clock = clock
        self._pid = os.getpid()
        self._files: dict[str, _File] = {}
        self._targets: dict[CheckSpec, list[_Target]] = {}
        self._maintenance: set[tuple[str, str]] = set()
        self._stamp_second = -1
        self._stamp = ""
        self._task: asyncio.Task[None] | None = None
        self._reopen = False
        self._retired: list[_File] = []  # files no longer named: closed by the writer thread
        self._lock = threading.Lock()
        self.configure(config)

    @property
    def active(self) -> bool:
        return bool(self._targets)

    def configure(self, config: Config) -> None:
        """Start or reload: which checks write to which files. Files no longer named are closed."""
        targets: dict[CheckSpec, list[_Target]] = {}
        files: dict[str, _File] = {}
        for virtual in config.virtuals:
            if not virtual.monitorfile:
                continue
            file = files.get(virtual.monitorfile) or self._files.get(virtual.monitorfile)
            file = files.setdefault(virtual.monitorfile, file or _File(virtual.monitorfile))
            for real in virtual.reals:
                words = check_words(virtual, real)
                targets.setdefault(real.check, []).append(_Target(
                    file, middle(self._pid, words, True), middle(self._pid, words, False),
                    (virtual.label, real.label)))
        for path, old in self._files.items():
            if path not in files:  # its collected lines go out first, then the writer closes it
                self._retired.append(old)
        self._files, self._targets = files, targets
        self._reopen = bool(files)  # a reload (SIGHUP) reopens every file, for rotation by copy or move

    def maintenance(self, virtual: Virtual, real: Real, on: bool) -> None:
        """A real in maintenance is written as ldirectord writes it: down, "Server in maintenance"."""
        (self._maintenance.add if on else self._maintenance.discard)((virtual.label, real.label))

    def record(self, spec: CheckSpec, outcome: Outcome) -> None:
        """One check result: one line in the monitorfile of every virtual that uses this check."""
        targets = self._targets.get(spec)
        if not targets:
            return
        now = self._clock()
        if int(now) != self._stamp_second:
            self._stamp_second = int(now)
            self._stamp = time.ctime(now)  # Perl's scalar localtime(): "Thu Dec  3 03:10:09 2026"
        stamp = self._stamp
        message = escape(outcome.detail)
        for target in targets:
            if self._maintenance and target.key in self._maintenance:
                line = f"[{stamp}{target.down}Server in maintenance\n"
            else:
                line = f"[{stamp}{target.up if outcome.ok else target.down}{message}\n"
            file = target.file
            if file.pending_bytes + len(line) > PENDING_LIMIT:
                file.dropped += 1
                continue
            file.pending.append(line)
            file.pending_bytes += len(line)

    # -- writing ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._flush_loop(), name="healthd-monitorfile")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._retired += self._files.values()
        self._files, self._targets = {}, {}
        await self.flush()

    async def flush(self) -> None:
        """Hand what was collected so far to the writer thread, and wait for it."""
        batch, retired, reopen = self._take()
        if batch or retired or reopen:
            await asyncio.to_thread(self._write_batch, batch, retired, reopen)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    def _take(self) -> tuple[list[_Batch], list[_File], bool]:
        """On the event loop: swap each file's collected lines out, so the loop never shares a list."""
        batch: list[_Batch] = []
        for file in [*self._files.values(), *self._retired]:
            if file.pending or file.dropped:
                batch.append((file, file.pending, file.dropped))
                file.pending, file.pending_bytes, file.dropped = [], 0, 0
        retired, self._retired = self._retired, []
        reopen, self._reopen = self._reopen, False
        return batch, retired, reopen

    def _write_batch(self, batch: list[_Batch], retired: list[_File], reopen: bool) -> None:
        """In a worker thread (one at a time): the only code that touches file descriptors."""
        with self._lock:
            if reopen:
                for file in self._files.values():
                    self._close(file)
            for file, lines, dropped in batch:
                self._write(file, lines, dropped)
            for file in retired:
                self._close(file)

    def _write(self, file: _File, lines: list[str], dropped: int) -> None:
        if dropped:
            log.warning("monitorfile %s: %d lines dropped, the file could not be written fast enough",
                        file.path, dropped)
        if not lines:
            return
        try:
            self._open(file)
            data = "".join(lines).encode(errors="replace")
            assert file.fd is not None
            while data:
                written = os.write(file.fd, data)
                data = data[written:]
        except OSError as exc:
            why = exc.strerror or str(exc)
            if file.error != why:
                log.error("monitorfile %s cannot be written: %s (%d lines lost)", file.path, why, len(lines))
            file.error = why
            self._close(file)
            return
        if file.error is not None:
            log.info("monitorfile %s is written again", file.path)
            file.error = None

    @staticmethod
    def _open(file: _File) -> None:
        if file.fd is not None:
            try:
                st = os.stat(file.path)
                if (st.st_dev, st.st_ino) == file.ident:
                    return
            except FileNotFoundError:
                pass
            MonitorFiles._close(file)  # rotated away: the next lines start a new file
        file.fd = os.open(file.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        st = os.fstat(file.fd)
        file.ident = (st.st_dev, st.st_ino)

    @staticmethod
    def _close(file: _File) -> None:
        if file.fd is not None:
            with contextlib.suppress(OSError):
                os.close(file.fd)
            file.fd = None
            file.ident = None
