"""Every `service=` value ldirectord knows, the healthd module that checks it, and which are enabled.

The one list of service names: the config parser accepts KNOWN_SERVICES, the config
builder refuses what is not in SUPPORTED_SERVICES ("not supported yet"), and the check
runner imports SERVICE_MODULES[service] from healthd.checks.
"""

from __future__ import annotations

# service -> module under healthd.checks that implements its negotiate check
# ("none" needs no module: it is always up).
SERVICE_MODULES: dict[str, str] = {
    "http": "http", "https": "http", "http_proxy": "http",
    "simpletcp": "simpletcp",
    "dns": "dns",
    "smtp": "mail", "submission": "mail", "pop": "mail", "pops": "mail",
    "imap": "mail", "imaps": "mail", "nntp": "mail",
    "ftp": "ftp",
    "ldap": "ldap", "ldaps": "ldap",
    "mysql": "sql", "pgsql": "sql", "oracle": "sql",
    "sip": "sip",
    "radius": "radius",
}

# Checks that exist but are not offered, and why.
NOT_ENABLED: dict[str, str] = {"oracle": "never run against a real Oracle server"}

KNOWN_SERVICES: frozenset[str] = frozenset({"none", *SERVICE_MODULES})
SUPPORTED_SERVICES: frozenset[str] = KNOWN_SERVICES - set(NOT_ENABLED)
