"""What `ipvsadm -S -n` must print for a table: the kernel's state seen through the tool users know."""

from __future__ import annotations

import ipaddress

from healthd.ipvs.model import Dest, Family, Forward, Service, ServiceKey, ServiceProtocol, Table

FLAG_NAMES = {"sh": ("sh-fallback", "sh-port"), "mh": ("mh-fallback", "mh-port")}
FORWARD = {Forward.GATE: "-g", Forward.MASQ: "-m", Forward.IPIP: "-i"}


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def service_spec(key: ServiceKey) -> str:
    if key.protocol is ServiceProtocol.FWM:
        return f"-f {key.fwmark}" + (" -6" if key.family is Family.INET6 else "")
    options = {ServiceProtocol.TCP: "-t", ServiceProtocol.UDP: "-u", ServiceProtocol.SCTP: "--sctp-service"}
    opt = options[key.protocol]
    return f"{opt} {_host(key.address)}:{key.port}"


def service_line(svc: Service) -> str:
    line = f"-A {service_spec(svc.key)} -s {svc.scheduler}"
    if svc.persistent is not None:
        line += f" -p {svc.persistent}"
        if svc.netmask is not None:
            if svc.key.family is Family.INET6:
                line += f" -M {svc.netmask}"
            else:
                line += f" -M {ipaddress.IPv4Network(f'0.0.0.0/{svc.netmask}').netmask}"
    if svc.one_packet:
        line += " -o"
    if svc.sched_flags:
        names = FLAG_NAMES.get(svc.scheduler, ("flag-1", "flag-2", "flag-3"))
        line += " -b " + ",".join(names[f - 1] for f in sorted(svc.sched_flags))
    return line


def dest_line(key: ServiceKey, dest: Dest) -> str:
    real = f"{_host(dest.address)}:{dest.port}"
    line = f"-a {service_spec(key)} -r {real} {FORWARD[dest.forward]} -w {dest.weight}"
    if dest.forward is Forward.IPIP:
        line += " --tun-type ipip"
    return line


def save_lines(table: Table) -> list[str]:
    """The lines, sorted (ipvsadm lists in the kernel's hash order)."""
    lines = []
    for key, entry in table.items():
        lines.append(service_line(entry.service))
        lines += [dest_line(key, d) for d in entry.dests.values()]
    return sorted(lines)
