"""Negotiate check for service=dns: ask the real server itself for `request`, match the answer to `receive`.

As in ldirectord, the question goes to the real (UDP, or TCP when the virtual's
protocol is tcp) and the check is up when an answer record equals `receive`.
healthd also matches AAAA records, compares addresses by value (so "2001:db8::1"
equals "2001:DB8:0::1"), accepts `receive` as a regex that must match the whole
answer, and with an empty `receive` is up on any A/AAAA/PTR answer.
"""

from __future__ import annotations

import ipaddress
import re

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename

from healthd.checks.context import CheckContext
from healthd.checks.dialog import CheckFailed, bounded, strip_slash
from healthd.checks.spec import CheckSpec, Outcome
from healthd.vocab import ServiceProtocol

ANSWER_TYPES = ("A", "AAAA", "PTR")

# ---- pure protocol logic -------------------------------------------------


def question_for(request: str, receive: str) -> tuple[str, list[str]]:
    """The name to ask and the record types to try, in order.

    An address is looked up in reverse (PTR), as Net::DNS does for ldirectord;
    an IPv6 `receive` asks for AAAA; otherwise A, then AAAA if A did not match.
    """
    name = strip_slash(request).strip()
    if not name:
        raise CheckFailed("no name to look up: set request to a DNS name or address")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return dns.reversename.from_address(str(address)).to_text(), ["PTR"]
    try:
        wanted = ipaddress.ip_address(receive)
    except ValueError:
        return name, ["A", "AAAA"]
    return name, ["AAAA" if wanted.version == 6 else "A"]


def answer_texts(response: dns.message.Message) -> list[tuple[str, str]]:
    """(type, text) for every A, AAAA and PTR record in the answer section; names without the final dot."""
    found: list[tuple[str, str]] = []
    for rrset in response.answer:
        kind = dns.rdatatype.to_text(rrset.rdtype)
        if kind not in ANSWER_TYPES:
            continue
        for rdata in rrset:
            text = rdata.to_text()
            found.append((kind, text.rstrip(".") if kind == "PTR" else text))
    return found


def answer_matches(kind: str, text: str, receive: str, receive_re: str | None) -> bool:
    """Whether one answer record satisfies `receive`."""
    if not receive:
        return True
    if kind == "PTR":
        if text.lower() == receive.rstrip(".").lower():
            return True
    else:
        try:
            if ipaddress.ip_address(text) == ipaddress.ip_address(receive):
                return True
        except ValueError:
            pass
    if receive_re is None:
        return False
    try:
        return re.fullmatch(receive_re, text) is not None
    except re.error:
        return False


# ---- the exchange --------------------------------------------------------


async def _ask(spec: CheckSpec, name: str, kind: str) -> dns.message.Message:
    query = dns.message.make_query(name, kind)
    if spec.protocol == ServiceProtocol.TCP:
        response = await dns.asyncquery.tcp(query, spec.address, port=spec.port)
    else:
        # A truncated UDP answer is asked again over TCP, as resolvers do.
        response, _ = await dns.asyncquery.udp_with_fallback(query, spec.address, port=spec.port)
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        raise CheckFailed(f"DNS {dns.rcode.to_text(rcode)} for {name} {kind}")
    return response


async def _dns(spec: CheckSpec) -> str:
    name, kinds = question_for(spec.request, spec.receive)
    seen: list[str] = []
    for kind in kinds:
        try:
            response = await _ask(spec, name, kind)
        except dns.exception.DNSException as exc:
            raise CheckFailed(f"bad DNS reply: {exc}") from exc
        for found_kind, text in answer_texts(response):
            if answer_matches(found_kind, text, spec.receive, spec.receive_re):
                return f"DNS {found_kind} {text} for {name}"
            seen.append(text)
    if not seen:
        raise CheckFailed(f"DNS: no {'/'.join(kinds)} answer for {name}")
    raise CheckFailed(f"DNS answer {', '.join(seen[:4])} does not match receive")


async def check(spec: CheckSpec, ctx: CheckContext) -> Outcome:
    """Negotiate check for service=dns; never raises for a server's behaviour."""
    return await bounded(spec, lambda: _dns(spec))
