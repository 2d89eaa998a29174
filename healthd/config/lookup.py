"""Finding things the config names: the file itself, host names and service (port) names.

Host names are resolved once, at load time, as ldirectord does. The resolver is
a parameter so that tests (and the property test's junk) never reach real DNS.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import re
import socket
from collections.abc import Callable

from healthd.config.defaults import SERVICE_PORTS
from healthd.config.model import ConfigError, ConfigIssue
from healthd.threads import start_daemon_thread

# host, family (4 or 6) -> first address of that family, or None if unresolvable.
Resolver = Callable[[str, int], "str | None"]

CONFIG_DIRS = ("/etc/ha.d", "/etc/ha.d/conf")
DEFAULT_NAME = "ldirectord.cf"


def find_config(name: str | None = None, dirs: tuple[str, ...] = CONFIG_DIRS) -> str:
    """ldirectord's lookup: /etc/ha.d/NAME, /etc/ha.d/conf/NAME, then NAME as a path."""
    wanted = name or DEFAULT_NAME
    candidates = [os.path.join(d, wanted) for d in dirs] + [wanted]
    for path in candidates:
        if os.path.isfile(path):
            return path
    looked = ", ".join(candidates)
    raise ConfigError([ConfigIssue(wanted, 0, f"configuration file not found (looked for {looked})")])


RESOLVE_TIMEOUT = 5.0  # seconds one name may take; a dead DNS server must not hang a (re)load


def system_resolver(host: str, family: int) -> str | None:
    """The first address of `family` for `host` (getaddrinfo), None if none within RESOLVE_TIMEOUT."""
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    answer: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def ask() -> None:
        try:
            infos = socket.getaddrinfo(host, None, af, socket.SOCK_STREAM)
            answer.put(ipaddress.ip_address(str(infos[0][4][0]).split("%")[0]).compressed if infos else None)
        except (OSError, UnicodeError, ValueError):
            answer.put(None)

    # getaddrinfo cannot be cancelled; a daemon thread lets a stuck lookup be abandoned.
    start_daemon_thread(ask, f"resolve {host[:40]}")
    try:
        return answer.get(timeout=RESOLVE_TIMEOUT)
    except queue.Empty:
        return None


# A dotted IPv4 address exactly as ipaddress spells it: no leading zeros, each part 0-255.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def literal_ip(host: str, family: int) -> str | None:
    """The canonical text of an IP literal of `family`, else None."""
    if family == 4 and _CANONICAL_IPV4.fullmatch(host):
        return host  # the common case, answered without building an address object
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None
    return addr.compressed if addr.version == family else None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve_host(host: str, family: int, resolver: Resolver) -> str | None:
    literal = literal_ip(host, family)
    if literal is not None:
        return literal
    if is_ip(host):
        return None  # an IP literal of the other family
    if host.replace(".", "").isdigit():
        return None  # dotted numbers that are not an address are a typo, not a name
    return resolver(host, family)


def resolve_port(port: str, protocol: str) -> int | None:
    """A port number or service name -> number (0 allowed), None if unknown."""
    if port.isdigit():
        number = int(port)
        return number if number < 65536 else None
    proto = "udp" if protocol == "udp" else "tcp"
    try:
        return socket.getservbyname(port, proto)
    except (OSError, UnicodeError, ValueError):
        pass
    return SERVICE_PORTS.get(port)
