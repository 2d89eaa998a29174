"""The seed's four tables, built by healthd's driver from hand-written values, are exactly what the
seed's ipvsadm commands make: `ipvsadm -Ln` compared byte for byte."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from healthd.ipvs.model import (
    AddDest,
    AddService,
    Dest,
    Entry,
    Family,
    Forward,
    Operation,
    Service,
    ServiceKey,
    ServiceProtocol,
)
from healthd.ipvs.reconcile import Reconciler
from tests.kernel.conftest import ipvsadm


def _shared() -> Path:
    """The project's shared material: the sibling `shared` of the checkout (or of a parent, for worktrees)."""
    repo = Path(__file__).resolve().parents[2]
    for base in repo.parents:
        if (base / "shared" / "data" / "configs").is_dir():
            return base / "shared"
    return repo.parent / "shared"


CONFIGS = _shared() / "data" / "configs"

VIP = ServiceKey(Family.INET, ServiceProtocol.TCP, "172.17.111.111", 80)
NAT_VIP = ServiceKey(Family.INET, ServiceProtocol.TCP, "172.17.111.117", 80)
MARK = ServiceKey(Family.INET, ServiceProtocol.FWM, fwmark=99)

# the tables, written by hand from each config (the order is the one of the ipvsadm commands)
SEEDS: dict[str, list[Operation]] = {
    "seed-dr.cf": [
        AddService(Service(VIP, "wrr")),
        AddDest(VIP, Dest("172.17.111.234", 80, Forward.GATE, 1)),
        AddDest(VIP, Dest("172.17.111.222", 80, Forward.GATE, 1)),
    ],
    "seed-fwmark-persistent.cf": [
        AddService(Service(MARK, "rr", persistent=360)),
        AddDest(MARK, Dest("172.17.111.234", 0, Forward.GATE, 1)),
        AddDest(MARK, Dest("172.17.111.222", 0, Forward.GATE, 1)),
    ],
    "seed-nat.cf": [
        AddService(Service(NAT_VIP, "wrr")),
        AddDest(NAT_VIP, Dest("192.168.199.146", 80, Forward.MASQ, 1)),
        AddDest(NAT_VIP, Dest("192.168.199.143", 80, Forward.MASQ, 1)),
    ],
    "seed-healthcheck.cf": [
        AddService(Service(VIP, "wrr")),
        AddDest(VIP, Dest("172.17.111.234", 80, Forward.GATE, 2)),
        AddDest(VIP, Dest("172.17.111.222", 80, Forward.GATE, 2)),
    ],
}

# seed-healthcheck.cf quotes no ipvsadm commands; these say what its lines mean
HEALTHCHECK_COMMANDS = [
    "ipvsadm -A -t 172.17.111.111:80 -s wrr",
    "ipvsadm -a -t 172.17.111.111:80 -r 172.17.111.234:80 -g -w 2",
    "ipvsadm -a -t 172.17.111.111:80 -r 172.17.111.222:80 -g -w 2",
]


def seed_commands(name: str) -> list[list[str]]:
    """The ipvsadm commands quoted in the config's comments, as argument lists."""
    lines = [line.lstrip("#").strip() for line in (CONFIGS / name).read_text().splitlines()
             if re.match(r"#\s+ipvsadm ", line)] or HEALTHCHECK_COMMANDS
    commands = []
    for line in lines:
        commands.append(shlex.split(re.sub(r"\(.*\)\s*$", "", line))[1:])
    return commands


def table_of(ops: list[Operation]) -> dict[ServiceKey, Entry]:
    out: dict[ServiceKey, Entry] = {}
    for op in ops:
        if isinstance(op, AddService):
            out[op.service.key] = Entry(op.service, {})
        elif isinstance(op, AddDest):
            out[op.service] = Entry(out[op.service].service, {**out[op.service].dests, op.dest.key: op.dest})
    return out


@pytest.mark.parametrize("name", sorted(SEEDS))
async def test_seed_table_matches_ipvsadm(table: Any, name: str) -> None:
    for args in seed_commands(name):
        ipvsadm(*args)
    expected = ipvsadm("-Ln")
    expected_dump = await table.dump()
    assert expected_dump == table_of(SEEDS[name])  # the driver reads ipvsadm's table as written by hand
    await table.flush()
    assert ipvsadm("-Ln").count("\n") == 3  # empty: the header only

    for op in SEEDS[name]:
        await table.apply(op)
    assert ipvsadm("-Ln") == expected

    # and through the reconciler (it orders reals by address: compare sorted)
    await table.flush()
    desired = table_of(SEEDS[name])
    await Reconciler(table).sync(desired, set(desired))
    assert ipvsadm("-Ln", "--sort") == _sorted_view(expected)


def _sorted_view(listing: str) -> str:
    """`ipvsadm -Ln` text with each service's reals in ipvsadm's --sort order."""
    head, blocks = listing.splitlines()[:3], []
    for line in listing.splitlines()[3:]:
        if line.startswith("  ->"):
            blocks[-1][1].append(line)
        else:
            blocks.append((line, []))
    out = list(head)
    for svc, reals in blocks:
        out.append(svc)
        out += sorted(reals, key=lambda r: tuple(int(x) for x in re.split(r"[.:]", r.split()[1])))
    return "\n".join(out) + "\n"


def test_ipvsadm_default_persistence_is_the_configs_360() -> None:
    """The fwmark seed's `-p` has no value: ipvsadm's default must equal the config's persistent=360."""
    ipvsadm("-A", "-f", "98", "-s", "rr", "-p")
    try:
        assert "FWM  98 rr persistent 360" in ipvsadm("-Ln")
    finally:
        ipvsadm("-D", "-f", "98")
