"""The labs' wiring alone, without IPVS: sites answer, NAT reals route back, DR reals hide the VIP."""

from __future__ import annotations

import pytest

from tests.kernel.seed.topology import NAT_CLIENT, NAT_DIP, SeedLab, fetch_urls, mac_of, stop_process

pytestmark = [pytest.mark.kernel, pytest.mark.root]


def test_nat_reals_serve_their_site_and_route_back_through_the_director(nat: SeedLab) -> None:
    for name, rip in nat.addresses.items():
        assert fetch_urls(nat.director, [f"http://{rip}/index.html", f"http://{rip}/ok.html"]) == [name, "ok"]
        assert f"via {NAT_DIP}" in nat.sites[name].host.run("ip", "route", "get", NAT_CLIENT)
    # A real reaches the client only through the director's forwarding. The client needs a route
    # back for this probe only (behind IPVS-NAT it talks to the VIP); both are undone afterwards.
    real1 = nat.sites["real1"].host
    nat.client.ip(f"route add {nat.addresses['real1']}/32 via {nat.vip}")
    site = nat.lab.website(nat.client, "client")
    try:
        site.wait_ready()
        assert real1.curl(f"http://{NAT_CLIENT}/index.html") == "client"
        nat.director.sysctl(net__ipv4__ip_forward=0)
        assert real1.curl(f"http://{NAT_CLIENT}/index.html", timeout=2) == ""
    finally:
        nat.director.sysctl(net__ipv4__ip_forward=1)
        assert site.process is not None
        stop_process(site.process)
        nat.lab.websites.remove(site)
        nat.client.ip(f"route del {nat.addresses['real1']}/32")


def test_dr_reals_hold_the_vip_but_only_the_director_answers_arp_for_it(dr: SeedLab) -> None:
    for name, site in dr.sites.items():
        rip = dr.addresses[name]
        urls = [f"http://{rip}/index.html", f"http://{rip}/missing.html", f"http://{rip}:443/ok.html"]
        assert fetch_urls(dr.client, urls) == [name, "", "ok"]
        # The VIP on lo is local to the real: it answers there itself.
        assert site.host.curl(f"http://{dr.vip}/index.html") == name
    site = dr.sites["real1"]
    site.break_check()
    assert dr.director.curl(f"http://{dr.addresses['real1']}/ok.html") == "maintenance"
    # No IPVS service yet: the director refuses port 80, but the client had to ARP for the VIP.
    assert dr.client.curl(f"http://{dr.vip}/", timeout=2) == ""
    neighbour = dr.client.run("ip", "neigh", "show", dr.vip)
    assert mac_of(dr.director, "eth0") in neighbour, neighbour
