"""The experiments' own tools, checked on fixed inputs: the ipvsadm reader and the seed-config edits."""

from __future__ import annotations

import re

import pytest

from tests.kernel.seed.director import Destination, parse_ipvsadm
from tests.kernel.seed.seedconf import add_real, seed_config, set_global
from tests.kernel.seed.topology import alternates, tally

pytestmark = [pytest.mark.kernel]

IPVSADM_LN = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.99.1.117:80 wrr
  -> 10.99.2.143:80               Masq    1      0          0
  -> 10.99.2.146:80               Masq    1      3          1
FWM  99 rr persistent 360
  -> 10.99.3.222:0                Route   0      0          0
TCP  [2001:db8::5]:80 wlc
"""


def test_parse_ipvsadm_reads_services_destinations_forwarding_and_weight() -> None:
    table = parse_ipvsadm(IPVSADM_LN)
    assert table == {
        "TCP 10.99.1.117:80 wrr": (
            Destination("10.99.2.143", 80, "Masq", 1),
            Destination("10.99.2.146", 80, "Masq", 1),
        ),
        "FWM 99 rr persistent 360": (Destination("10.99.3.222", 0, "Route", 0),),
        "TCP [2001:db8::5]:80 wlc": (),
    }


def test_parse_ipvsadm_rejects_a_destination_without_a_service() -> None:
    with pytest.raises(ValueError, match="destination before any service"):
        parse_ipvsadm("  -> 10.0.0.1:80 Route 1 0 0\n")


def test_seed_config_moves_every_seed_address_and_only_whole_addresses() -> None:
    text = seed_config("seed-dr.cf", {"172.17.111.111": "10.99.3.111"})
    assert "virtual=10.99.3.111:80" in text and "172.17.111.111" not in text
    assert "real=172.17.111.222:80 gate 1" in text
    # .22 is only a prefix of .222: not an address the file mentions
    with pytest.raises(ValueError, match=re.escape("does not mention 172.17.111.22")):
        seed_config("seed-dr.cf", {"172.17.111.22": "10.9.9.9"})


def test_config_edits_replace_or_add_globals_and_append_reals() -> None:
    text = "checkinterval=1\nquiescent=no\n\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tscheduler=rr\n"
    edited = add_real(
        set_global(set_global(text, "quiescent", "yes"), "fallback", "10.0.0.9:80 gate"), "real=x"
    )
    assert edited == (
        "checkinterval=1\nquiescent=yes\nfallback=10.0.0.9:80 gate\n\n"
        "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\treal=x\n\tscheduler=rr\n"
    )


def test_tally_and_alternation() -> None:
    assert tally(["real2", "real1", "", "real1"]) == "failed=1 real1=2 real2=1"
    assert alternates(["a", "b", "a", "b"])
    assert not alternates(["a", "b", "b", "a"])
