"""The lab's wiring alone, without IPVS: sites answer, NAT reals route back, DR reals hide the VIP."""

from __future__ import annotations

import pytest

from tests.kernel.seed.topology import (
    NAT_CLIENT,
    NAT_DIP,
    NAT_REALS,
    Lab,
    build_dr,
    build_nat,
    fetch_urls,
    mac_of,
)

pytestmark = [pytest.mark.kernel, pytest.mark.root]


def test_nat_reals_serve_their_site_and_route_back_through_the_director(lab: Lab) -> None:
    seed = build_nat(lab)
    for name, rip in seed.addresses.items():
        assert seed.director.curl(f"http://{rip}/index.html") == name
        assert seed.director.curl(f"http://{rip}/ok.html") == "ok"
        assert f"via {NAT_DIP}" in seed.sites[name].host.run("ip", "route", "get", NAT_CLIENT)
    # A real reaches the client only through the director's forwarding. (The client needs a
    # route back for this probe only: behind IPVS-NAT it always talks to the VIP.)
    seed.client.ip(f"route add {NAT_REALS['real1']}/32 via {seed.vip}")
    lab.website(seed.client, "client")
    lab.wait_websites()
    assert seed.sites["real1"].host.curl(f"http://{NAT_CLIENT}/index.html") == "client"
    seed.director.sysctl(net__ipv4__ip_forward=0)
    assert seed.sites["real1"].host.curl(f"http://{NAT_CLIENT}/index.html", timeout=2) == ""


def test_dr_reals_hold_the_vip_but_only_the_director_answers_arp_for_it(lab: Lab) -> None:
    seed = build_dr(lab, ("real1", "real2"), ports=(80, 443))
    for name, site in seed.sites.items():
        assert seed.director.curl(f"http://{seed.addresses[name]}/index.html") == name
        # The VIP on lo is local to the real: it answers there, on both ports.
        assert site.host.curl(f"http://{seed.vip}:443/index.html") == name
    rip = seed.addresses["real1"]
    urls = [f"http://{rip}/index.html", f"http://{rip}/missing.html", f"http://{rip}:443/ok.html"]
    assert fetch_urls(seed.client, urls) == ["real1", "", "ok"]
    site = seed.sites["real1"]
    site.break_check()
    assert seed.director.curl(f"http://{seed.addresses['real1']}/ok.html") == "maintenance"
    site.restore_check()
    # Nothing listens on the director's port 80 here; the attempt only makes the client ARP for the VIP.
    assert seed.client.curl(f"http://{seed.vip}/", timeout=2) == ""
    neighbour = seed.client.run("ip", "neigh", "show", seed.vip)
    assert mac_of(seed.director, "eth0") in neighbour, neighbour
