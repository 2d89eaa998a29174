"""Batched netlink on the real kernel: 1,024 requests per datagram with one ACK at the end build the table
`ipvsadm -R` builds; a refusal in the middle of a batch costs only its own entry and is pinned to it; the
dump's fast reader (the kernel's fixed layout) reads what the attribute walk reads."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path
from typing import Any

from healthd.ipvs import genl, netlink
from healthd.ipvs.model import (
    AddDest,
    AddService,
    Dest,
    Entry,
    Family,
    Forward,
    Service,
    ServiceKey,
    ServiceProtocol,
    Table,
)
from healthd.ipvs.reconcile import Reconciler, diff
from tests.kernel.conftest import ipvsadm
from tests.kernel.ipvsadm_view import save_lines

FORWARDS = (Forward.MASQ, Forward.GATE, Forward.IPIP)


def big_table() -> Table:
    """Three services (one IPv6) with 2,400 reals between them: the apply spans three batches."""
    table: dict[ServiceKey, Entry] = {}
    services = ((Family.INET, "10.30.0.1", 1100), (Family.INET, "10.30.0.2", 900),
                (Family.INET6, "fd30::1", 400))
    for i, (family, address, count) in enumerate(services):
        key = ServiceKey(family, ServiceProtocol.TCP, address, 80 + i)
        dests = {}
        for j in range(count):
            host = f"10.{31 + i}.{j // 250}.{j % 250 + 1}" if family is Family.INET else f"fd31::{j + 1:x}"
            upper = 100 + j if j % 7 == 0 else 0
            forward = FORWARDS[j % 3] if family is Family.INET else Forward.MASQ
            # gate and ipip reals take the virtual's port (ipvsadm -R would give them that one)
            port = 8000 + j % 5 if forward is Forward.MASQ else key.port
            d = Dest(host, port, forward, j % 11, upper, upper // 2)
            dests[d.key] = d
        table[key] = Entry(Service(key, ("wrr", "rr", "wlc")[i]), dests)
    return table


def thresholds(table: Table) -> list[str]:
    """What `ipvsadm -Ln --thresholds` must list for the reals (-S leaves thresholds out)."""
    lines = []
    for entry in table.values():
        for d in entry.dests.values():
            host = f"[{d.address}]" if ":" in d.address else d.address
            lines.append(f"{host}:{d.port} {d.upper} {d.lower}")
    return sorted(lines)


def listed_thresholds() -> list[str]:
    out = []
    for line in ipvsadm("-Ln", "--thresholds").splitlines():
        parts = line.split()
        if parts and parts[0] == "->" and parts[1] != "RemoteAddress:Port":
            out.append(f"{parts[1]} {parts[2]} {parts[3]}")
    return sorted(out)


def saved() -> list[str]:
    return sorted(line for line in ipvsadm("-S", "-n").splitlines() if line)


async def test_batched_apply_builds_the_table_ipvsadm_restores(table: Any, tmp_path: Path) -> None:
    desired = big_table()
    script = tmp_path / "table.ipvs"
    script.write_text("\n".join(save_lines(desired)) + "\n")  # "-A" lines sort before "-a" lines
    with script.open() as stdin:
        subprocess.run(["ipvsadm", "-R"], stdin=stdin, check=True)  # noqa: ASYNC221 (the test waits for it)
    restored = saved()
    assert len(restored) == 3 + 2400
    await table.flush()

    ops = diff(desired, {}, set(desired))
    assert len(ops) > 2 * netlink.BATCH  # three datagrams
    rec = Reconciler(table)
    await rec.sync(desired, set(desired))
    assert len(rec.last_ops) == len(ops) and not rec.refusals
    assert saved() == restored
    assert listed_thresholds() == thresholds(desired)
    assert await table.dump() == desired


async def test_a_refused_real_in_the_middle_of_a_batch_costs_only_itself(table: Any) -> None:
    key = ServiceKey(Family.INET, ServiceProtocol.TCP, "10.40.0.1", 80)
    dests = [Dest(f"10.41.{j // 250}.{j % 250 + 1}", 80, Forward.GATE, 1) for j in range(1500)]
    # a lower threshold without an upper one: ERANGE; in the middle of the first batch, as its last
    # request (the one that asks for the ACK), and in the middle of the second
    bad = {500, netlink.BATCH - 2, 1200}
    for j in bad:
        dests[j] = Dest(dests[j].address, 80, Forward.GATE, 1, 0, 5)
    ops = [AddService(Service(key, "wrr")), *(AddDest(key, d) for d in dests)]
    results = await table.apply_all(ops)
    refused = {i - 1 for i, r in enumerate(results) if r is not None}
    assert refused == bad
    for j in bad:
        error = results[j + 1]
        assert error is not None and error.errno == errno.ERANGE
        assert f"add real {dests[j].address}:80 to TCP 10.40.0.1:80" in str(error)
    listed = saved()
    assert len(listed) == 1 + 1500 - len(bad)
    assert not any(f"-r {dests[j].address}:80 " in line for j in bad for line in listed)


async def test_the_reconciler_holds_back_a_refused_service_and_applies_the_rest(table: Any) -> None:
    """A service with a scheduler the kernel lacks, between two good ones, in one batch: only it and its
    reals stay out, each refusal recorded once against its own entry."""
    keys = [ServiceKey(Family.INET, ServiceProtocol.TCP, f"10.50.0.{i}", 80) for i in (1, 2, 3)]
    desired: dict[ServiceKey, Entry] = {}
    for i, key in enumerate(keys):
        dests = [Dest(f"10.51.{i}.{j % 250 + 1}", 80 + j // 250) for j in range(400)]
        desired[key] = Entry(Service(key, "nosuch" if i == 1 else "rr"), {d.key: d for d in dests})
    refused: list[tuple[str, int]] = []
    rec = Reconciler(table, on_refused=lambda op, e: refused.append((type(op).__name__, e.errno)))
    await rec.sync(desired, set(desired))
    assert refused == [("AddService", errno.ENOENT)]
    assert [r.key for r in rec.refusals.entries()] == [(keys[1], None)]
    got = await table.dump()
    assert set(got) == {keys[0], keys[2]} and all(len(got[k].dests) == 400 for k in (keys[0], keys[2]))
    assert len(saved()) == 2 + 800


async def test_the_fast_dump_reader_reads_what_the_attribute_walk_reads(table: Any) -> None:
    desired = big_table()
    await Reconciler(table).sync(desired, set(desired))
    for key, entry in desired.items():
        fast = genl.DestDecoder(key.family)
        seq = table._next_seq()
        pairs = await table._dump(genl.dump_dests(table._family_id, seq, key), seq,
                                  lambda p, f=fast, fam=key.family: (f(p), genl.decode_dest(p, fam)))
        assert fast._layout is not None  # the kernel's layout was learned: the fast path ran
        assert [a for a, _ in pairs] == [b for _, b in pairs]
        assert [(a.active_conns, a.inactive_conns) for a, _ in pairs] == \
            [(b.active_conns, b.inactive_conns) for _, b in pairs]
        assert {a.key: a for a, _ in pairs} == dict(entry.dests)
