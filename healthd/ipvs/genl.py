"""The IPVS generic netlink wire format: encode requests from healthd's value types, decode dumps.

Hand-written with `struct` because it runs once per destination: pyroute2's generic message
classes cost ~0.4 ms per message to build or parse (~7 ms under the test VM's emulation), which
would make a 10,000-destination table take minutes. The IPVS family id is asked of the generic
netlink controller here too (`get_family`), so healthd needs no netlink library at all. Pure functions,
no I/O: unit-tested on any kernel.
"""

from __future__ import annotations

import functools
import operator
import socket
import struct
from collections.abc import Callable, Iterator, Sequence

from healthd.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    EditDest,
    EditService,
    Family,
    Forward,
    Operation,
    Service,
    ServiceKey,
    ServiceProtocol,
)

# netlink
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLA_TYPE_MASK = 0x3FFF
_NLMSGHDR = struct.Struct("=IHHII")
_GENLHDR = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")

# the generic netlink controller (include/uapi/linux/genetlink.h): resolves a family name to its id
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 1, 2
IPVS_FAMILY_NAME = "IPVS"

# IPVS commands (include/uapi/linux/ip_vs.h)
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_FLUSH = 17
GENL_VERSION = 1
ATTR_SERVICE, ATTR_DEST = 1, 2
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, SVC_PE_NAME = 6, 7, 8, 9, 11
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT, DEST_U_THRESH, DEST_L_THRESH = 1, 2, 3, 4, 5, 6
DEST_ACTIVE_CONNS, DEST_INACT_CONNS = 7, 8
DEST_ADDR_FAMILY = 11

# service flags and forwarding methods
F_PERSISTENT, F_HASHED, F_ONEPACKET = 0x1, 0x2, 0x4
SCHED_FLAG_BITS = {1: 0x8, 2: 0x10, 3: 0x20}
FWD_MASK = 0x7
FWD_CODE = {Forward.MASQ: 0, Forward.IPIP: 2, Forward.GATE: 3}
FWD_FROM_CODE = {v: k for k, v in FWD_CODE.items()}
PROTO_NUMBER = {
    ServiceProtocol.TCP: socket.IPPROTO_TCP,
    ServiceProtocol.UDP: socket.IPPROTO_UDP,
    ServiceProtocol.SCTP: 132,
}
PROTO_FROM_NUMBER = {v: k for k, v in PROTO_NUMBER.items()}


class DecodeError(ValueError):
    """The kernel sent something this codec does not understand."""


# ---------------------------------------------------------------- encoding

def _attr(kind: int, payload: bytes) -> bytes:
    head = _NLA.pack(_NLA.size + len(payload), kind)
    return head + payload + b"\0" * (-len(payload) % 4)


def _u16(kind: int, v: int) -> bytes:
    return _attr(kind, struct.pack("=H", v))


def _u32(kind: int, v: int) -> bytes:
    return _attr(kind, struct.pack("=I", v))


def _be16(kind: int, v: int) -> bytes:
    return _attr(kind, struct.pack("!H", v))


def _text(kind: int, v: str) -> bytes:
    return _attr(kind, v.encode() + b"\0")


def _addr(kind: int, family: Family, address: str) -> bytes:
    # 16 bytes whatever the family, as the kernel's union nf_inet_addr (and ipvsadm) has it
    return _attr(kind, socket.inet_pton(family, address).ljust(16, b"\0"))


def netmask_value(service: Service) -> int:
    """IPVS_SVC_ATTR_NETMASK as the kernel reads it: a network-order mask for IPv4, and for IPv6
    the prefix length as a host-order u32 (the kernel reads both with nla_get_be32 and no swap)."""
    plen = service.full_netmask if service.netmask is None else service.netmask
    if service.key.family is Family.INET6:
        return plen
    mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
    return struct.unpack("=I", struct.pack("!I", mask))[0]


def _service_key_attrs(key: ServiceKey) -> bytes:
    out = _u16(SVC_AF, key.family)
    if key.protocol is ServiceProtocol.FWM:
        return out + _u32(SVC_FWMARK, key.fwmark)
    return out + _u16(SVC_PROTOCOL, PROTO_NUMBER[key.protocol]) + _addr(SVC_ADDR, key.family, key.address) \
        + _be16(SVC_PORT, key.port)


def service_flags(service: Service) -> int:
    flags = F_PERSISTENT if service.persistent is not None else 0
    if service.one_packet:
        flags |= F_ONEPACKET
    for f in service.sched_flags:
        flags |= SCHED_FLAG_BITS[f]
    return flags


def _service_attrs(service: Service) -> bytes:
    """The whole service: IPVS "set" replaces every field, so a partial one would reset the rest."""
    body = _service_key_attrs(service.key) + _text(SVC_SCHED_NAME, service.scheduler)
    body += _attr(SVC_FLAGS, struct.pack("=II", service_flags(service), 0xFFFFFFFF))
    body += _u32(SVC_TIMEOUT, service.persistent or 0) + _u32(SVC_NETMASK, netmask_value(service))
    if service.pe_name:
        body += _text(SVC_PE_NAME, service.pe_name)
    return body


def _dest_key_attrs(family: Family, dest: DestKey) -> bytes:
    return _u16(DEST_ADDR_FAMILY, family) + _addr(DEST_ADDR, family, dest.address) \
        + _be16(DEST_PORT, dest.port)


# a whole destination nest in one pack: ADDR_FAMILY, ADDR, PORT, FWD_METHOD, WEIGHT, U_THRESH, L_THRESH
_DEST_NEST = struct.Struct("=HH" "HHH2x" "HH16s" "HHH2x" "HHI" "HHI" "HHI" "HHI")


@functools.lru_cache(maxsize=4096)
def _service_key_nest(key: ServiceKey) -> bytes:
    return _attr(ATTR_SERVICE, _service_key_attrs(key))


@functools.lru_cache(maxsize=4096)
def _dest_prefix(cmd: int, key: ServiceKey) -> bytes:
    """The generic netlink header and the service's key nest: the same for every real of a service."""
    return _GENLHDR.pack(cmd, GENL_VERSION, 0) + _service_key_nest(key)


def _dest_message(family_id: int, seq: int, flags: int, prefix: bytes, dest: Dest) -> bytes:
    # one pack for the netlink header, one for the whole destination nest: the per-real hot path
    family = Family.INET6 if ":" in dest.address else Family.INET
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(prefix) + _DEST_NEST.size, family_id, flags, seq, 0) + prefix \
        + _DEST_NEST.pack(
            _DEST_NEST.size, ATTR_DEST, 6, DEST_ADDR_FAMILY, family,
            20, DEST_ADDR, socket.inet_pton(family, dest.address), 6, DEST_PORT, socket.htons(dest.port),
            8, DEST_FWD_METHOD, FWD_CODE[dest.forward], 8, DEST_WEIGHT, dest.weight,
            8, DEST_U_THRESH, dest.upper, 8, DEST_L_THRESH, dest.lower)


def _dest_family(address: str) -> Family:
    return Family.INET6 if ":" in address else Family.INET


def message(family_id: int, seq: int, cmd: int, attrs: bytes,
            flags: int = NLM_F_REQUEST | NLM_F_ACK) -> bytes:
    body = _GENLHDR.pack(cmd, GENL_VERSION, 0) + attrs
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), family_id, flags, seq, 0) + body


def encode(family_id: int, seq: int, op: Operation, flags: int = NLM_F_REQUEST | NLM_F_ACK) -> bytes:
    """One request carrying `op`, asking for an ACK unless `flags` say otherwise."""
    if type(op) is AddDest or type(op) is EditDest:  # the bulk of any big table: no pattern matching
        cmd = CMD_NEW_DEST if type(op) is AddDest else CMD_SET_DEST
        return _dest_message(family_id, seq, flags, _dest_prefix(cmd, op.service), op.dest)
    match op:
        case AddService(service):
            return message(family_id, seq, CMD_NEW_SERVICE, _attr(ATTR_SERVICE, _service_attrs(service)),
                           flags)
        case EditService(service):
            return message(family_id, seq, CMD_SET_SERVICE, _attr(ATTR_SERVICE, _service_attrs(service)),
                           flags)
        case DeleteService(key):
            return message(family_id, seq, CMD_DEL_SERVICE, _attr(ATTR_SERVICE, _service_key_attrs(key)),
                           flags)
        case DeleteDest(key, dest_key):
            attrs = _attr(ATTR_DEST, _dest_key_attrs(_dest_family(dest_key.address), dest_key))
            return message(family_id, seq, CMD_DEL_DEST, _service_key_nest(key) + attrs, flags)
    raise TypeError(f"not an IPVS operation: {op!r}")


def encode_batch(family_id: int, first_seq: int, ops: Sequence[Operation]) -> bytes:
    """One datagram with a request per operation, numbered from `first_seq`; only the last asks for an
    ACK. The kernel answers a request without NLM_F_ACK only when it fails (an NLMSG_ERROR with that
    request's sequence number), and works through a datagram in order before the send returns: so the
    last request's answer ends the batch, every refusal before it has been read by then and is pinned
    to its own operation, and a table of 10,000 reals costs a few receives instead of 10,000."""
    last = len(ops) - 1
    quiet = NLM_F_REQUEST
    return b"".join([encode(family_id, first_seq + i, op, quiet if i < last else NLM_F_REQUEST | NLM_F_ACK)
                     for i, op in enumerate(ops)])


def get_family(seq: int, name: str = IPVS_FAMILY_NAME) -> bytes:
    """Ask the controller for the id of the generic netlink family `name`."""
    return message(GENL_ID_CTRL, seq, CTRL_CMD_GETFAMILY, _attr(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"),
                   NLM_F_REQUEST)


def family_id_of(payload: memoryview) -> int:
    """The family id in the controller's answer to get_family."""
    value = attrs(payload[_GENLHDR.size:]).get(CTRL_ATTR_FAMILY_ID)
    if value is None or len(value) < 2:
        raise DecodeError("the controller's answer has no family id")
    return int(struct.unpack_from("=H", value)[0])


def dump_services(family_id: int, seq: int) -> bytes:
    return message(family_id, seq, CMD_GET_SERVICE, b"", NLM_F_REQUEST | NLM_F_DUMP)


def dump_dests(family_id: int, seq: int, key: ServiceKey) -> bytes:
    return message(family_id, seq, CMD_GET_DEST, _attr(ATTR_SERVICE, _service_key_attrs(key)),
                   NLM_F_REQUEST | NLM_F_DUMP)


def flush(family_id: int, seq: int) -> bytes:
    return message(family_id, seq, CMD_FLUSH, b"")


# ---------------------------------------------------------------- decoding

def messages(data: bytes) -> Iterator[tuple[int, int, int, memoryview]]:
    """(type, flags, seq, payload) for each netlink message in one datagram."""
    view = memoryview(data)
    pos = 0
    while pos + _NLMSGHDR.size <= len(view):
        length, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(view, pos)
        if length < _NLMSGHDR.size:
            raise DecodeError(f"netlink message with length {length}")
        yield kind, flags, seq, view[pos + _NLMSGHDR.size: pos + length]
        pos += (length + 3) & ~3


def error_code(payload: memoryview) -> int:
    """The errno of an NLMSG_ERROR payload (0 for an ACK)."""
    return -struct.unpack_from("=i", payload)[0]


def attrs(payload: memoryview | bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    data = bytes(payload)
    pos, end = 0, len(data)
    unpack = _NLA.unpack_from
    while pos + 4 <= end:
        length, kind = unpack(data, pos)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = data[pos + 4: pos + length]
        pos += (length + 3) & ~3
    return out


_U32 = struct.Struct("=I")
_U16 = struct.Struct("=H")
_BE16 = struct.Struct("!H")


def _get(a: dict[int, bytes], kind: int, fmt: str, default: int | None = None) -> int:
    if kind not in a:
        if default is None:
            raise DecodeError(f"attribute {kind} missing")
        return default
    return struct.unpack_from(fmt, a[kind])[0]


def _text_of(v: bytes) -> str:
    return v.split(b"\0", 1)[0].decode()


def _addr_of(family: int, v: bytes) -> str:
    if family == Family.INET6:
        return socket.inet_ntop(socket.AF_INET6, v[:16])
    return socket.inet_ntop(socket.AF_INET, v[:4])


def _genl_attrs(payload: memoryview, outer: int) -> dict[int, bytes]:
    top = attrs(payload[_GENLHDR.size:])
    if outer not in top:
        raise DecodeError(f"dump message without attribute {outer}")
    return attrs(top[outer])


def decode_service(payload: memoryview) -> Service:
    """A service from one message of a service dump (the raw attributes, not pyroute2's defaults)."""
    a = _genl_attrs(payload, ATTR_SERVICE)
    family = Family(_get(a, SVC_AF, "=H"))
    if SVC_FWMARK in a and _get(a, SVC_FWMARK, "=I"):
        key = ServiceKey(family, ServiceProtocol.FWM, fwmark=_get(a, SVC_FWMARK, "=I"))
    else:
        number = _get(a, SVC_PROTOCOL, "=H")
        if number not in PROTO_FROM_NUMBER:
            raise DecodeError(f"unknown IP protocol {number}")
        key = ServiceKey(family, PROTO_FROM_NUMBER[number], _addr_of(family, a[SVC_ADDR]),
                         _get(a, SVC_PORT, "!H"))
    flags = struct.unpack_from("=I", a[SVC_FLAGS])[0] if SVC_FLAGS in a else 0
    raw_mask = _get(a, SVC_NETMASK, "=I", 0)
    if family is Family.INET6:
        plen = raw_mask
    else:
        plen = bin(struct.unpack("!I", struct.pack("=I", raw_mask))[0]).count("1")
    service = Service(
        key=key,
        scheduler=_text_of(a[SVC_SCHED_NAME]) if SVC_SCHED_NAME in a else "",
        persistent=_get(a, SVC_TIMEOUT, "=I", 0) if flags & F_PERSISTENT else None,
        netmask=plen,
        one_packet=bool(flags & F_ONEPACKET),
        sched_flags=frozenset(n for n, bit in SCHED_FLAG_BITS.items() if flags & bit),
        pe_name=_text_of(a[SVC_PE_NAME]) if SVC_PE_NAME in a else "",
    )
    return service.normalized()


def decode_dest(payload: memoryview, service_family: Family) -> Dest:
    """A real server from one message of a destination dump: one pass over the raw attributes."""
    unpack = _NLA.unpack_from
    pos, end = _GENLHDR.size, len(payload)
    while pos + 4 <= end:  # find the IPVS_CMD_ATTR_DEST nest
        length, kind = unpack(payload, pos)
        if length < 4:
            break
        if kind & NLA_TYPE_MASK == ATTR_DEST:
            pos, end = pos + 4, pos + length
            break
        pos += (length + 3) & ~3
    else:
        raise DecodeError("dump message without a real server")
    family, addr, port, fwd, weight, upper, lower = service_family, None, None, None, None, 0, 0
    active = inactive = 0
    u32 = _U32.unpack_from
    while pos + 4 <= end:
        length, kind = unpack(payload, pos)
        if length < 4:
            break
        kind &= NLA_TYPE_MASK
        v = pos + 4
        if kind == DEST_ADDR:
            addr = bytes(payload[v:v + 16])
        elif kind == DEST_PORT:
            port = _BE16.unpack_from(payload, v)[0]
        elif kind == DEST_FWD_METHOD:
            fwd = u32(payload, v)[0] & FWD_MASK
        elif kind == DEST_WEIGHT:
            weight = u32(payload, v)[0]
        elif kind == DEST_U_THRESH:
            upper = u32(payload, v)[0]
        elif kind == DEST_L_THRESH:
            lower = u32(payload, v)[0]
        elif kind == DEST_ACTIVE_CONNS:
            active = u32(payload, v)[0]
        elif kind == DEST_INACT_CONNS:
            inactive = u32(payload, v)[0]
        elif kind == DEST_ADDR_FAMILY:
            family = _U16.unpack_from(payload, v)[0]
        pos += (length + 3) & ~3
    if addr is None or port is None or weight is None or fwd not in FWD_FROM_CODE:
        raise DecodeError("real server in a dump without address, port, weight or a known forwarding method")
    return Dest(_addr_of(family, addr), port, FWD_FROM_CODE[fwd], weight, upper, lower,
                active_conns=active, inactive_conns=inactive)


# what a destination dump message must carry, and how each value is read ("=H" port: swapped after)
_DEST_FIELDS = {DEST_ADDR: "16s", DEST_PORT: "H", DEST_FWD_METHOD: "I", DEST_WEIGHT: "I", DEST_U_THRESH: "I",
                DEST_L_THRESH: "I", DEST_ACTIVE_CONNS: "I", DEST_INACT_CONNS: "I", DEST_ADDR_FAMILY: "H"}
_NEST_LEN = -1  # not an attribute: the destination nest's own length
_FIELD_ORDER = (DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT, DEST_U_THRESH, DEST_L_THRESH,
                DEST_ACTIVE_CONNS, DEST_INACT_CONNS, DEST_ADDR_FAMILY)


class _DestLayout:
    """Where a kernel puts each destination attribute: the same places in every message of a dump (the
    kernel writes them in one fixed order, the statistics last). A message is read with one mask-and-compare
    of every attribute header up to the last needed value (they must be the learned ones, else the message
    is read the slow way) and one unpack of the values: a 10,000-real dump is read ~3x faster than
    attribute by attribute."""

    def __init__(self, values: struct.Struct, order: Callable[[tuple], tuple], end: int, mask: int,
                 headers: int, nest_end: int) -> None:
        self.values = values  # the needed values and the nest's length, in the message's order
        self.order = order  # ... put in _FIELD_ORDER, the nest's length last
        self.end = end  # bytes of the payload the headers and values take
        self.mask = mask  # the header bytes of payload[:end], as a little-endian integer
        self.headers = headers  # their learned contents
        self.nest_end = nest_end  # the nest's length must reach past the last needed value

    @classmethod
    def learn(cls, payload: memoryview) -> _DestLayout | None:
        """The layout of this message, or None when it lacks a needed attribute (the slow path copes)."""
        if len(payload) < _GENLHDR.size + 4:
            return None
        nest_len, nest_kind = _NLA.unpack_from(payload, _GENLHDR.size)
        if nest_kind & NLA_TYPE_MASK != ATTR_DEST:
            return None
        # header bytes: the nest's kind (its length varies with the padding of the statistics, so it is read
        # as a value and checked to reach past the fields), then each attribute's length and kind
        header_bytes = [(_GENLHDR.size + 2, 2)]
        value_at = {_NEST_LEN: (_GENLHDR.size, "H")}
        pos, end = _GENLHDR.size + 4, min(len(payload), _GENLHDR.size + nest_len)
        wanted = set(_DEST_FIELDS)
        while wanted and pos + 4 <= end:
            length, kind = _NLA.unpack_from(payload, pos)
            if length < 4:
                return None
            header_bytes.append((pos, 4))
            kind &= NLA_TYPE_MASK
            if kind in wanted:
                fmt = _DEST_FIELDS[kind]
                if length - 4 < struct.calcsize("=" + fmt):
                    return None
                wanted.discard(kind)
                value_at[kind] = (pos + 4, fmt)
            pos += (length + 3) & ~3
        if wanted:
            return None
        # struct fields go in offset order, the gaps padded; itemgetter puts them back in _FIELD_ORDER
        placed = sorted((offset, f, kind) for kind, (offset, f) in value_at.items())
        fmt, at, order = "=", 0, []
        for offset, f, kind in placed:
            fmt += f"{offset - at}x{f}" if offset > at else f
            at = offset + struct.calcsize("=" + f)
            order.append(kind)
        end_at = max(at, max(o + n for o, n in header_bytes))
        mask = bytearray(end_at)
        for offset, n in header_bytes:
            mask[offset:offset + n] = b"\xff" * n
        mask_int = int.from_bytes(mask, "little")
        reorder = operator.itemgetter(*(order.index(k) for k in (*_FIELD_ORDER, _NEST_LEN)))
        headers = int.from_bytes(payload[:end_at], "little") & mask_int
        return cls(struct.Struct(fmt), reorder, end_at, mask_int, headers, at - _GENLHDR.size)

    def read(self, payload: memoryview) -> tuple | None:
        """The values in _FIELD_ORDER and the nest's length; None if this message is laid out otherwise."""
        end = self.end
        if len(payload) < end or int.from_bytes(payload[:end], "little") & self.mask != self.headers:
            return None
        values = self.order(self.values.unpack_from(payload))
        return values if values[-1] >= self.nest_end else None


class DestDecoder:
    """decode_dest for the messages of one dump, learning the kernel's layout from the first."""

    def __init__(self, service_family: Family) -> None:
        self.family = service_family
        self._layout: _DestLayout | None = None
        self._learned = False

    def feed(self, data: memoryview, seq: int, out: dict[DestKey, Dest]) -> int | None:
        """Read one datagram of the dump numbered `seq` into `out`: None while more is to come, 0 at its
        end (NLMSG_DONE), else the kernel's errno. Answers to other requests are skipped. The messages are
        walked here rather than through messages(): a 10,000-real dump is 10,000 of them."""
        pos, end = 0, len(data)
        unpack = _NLMSGHDR.unpack_from
        while pos + _NLMSGHDR.size <= end:
            length, kind, _flags, mseq, _pid = unpack(data, pos)
            if length < _NLMSGHDR.size:
                raise DecodeError(f"netlink message with length {length}")
            if mseq == seq:
                if kind == NLMSG_DONE:
                    return 0
                if kind == NLMSG_ERROR:
                    return error_code(data[pos + _NLMSGHDR.size:pos + length])
                dest = self(data[pos + _NLMSGHDR.size:pos + length])
                out[DestKey(dest.address, dest.port)] = dest
            pos += (length + 3) & ~3
        return None

    def __call__(self, payload: memoryview) -> Dest:
        if not self._learned:
            self._learned = True
            self._layout = _DestLayout.learn(payload)
        values = self._layout.read(payload) if self._layout is not None else None
        if values is None:
            return decode_dest(payload, self.family)
        addr, port, fwd, weight, upper, lower, active, inactive, family, _ = values
        forward = FWD_FROM_CODE.get(fwd & FWD_MASK)
        if forward is None:
            return decode_dest(payload, self.family)  # says what is wrong
        address = socket.inet_ntop(socket.AF_INET6 if family == Family.INET6 else socket.AF_INET,
                                   addr if family == Family.INET6 else addr[:4])
        return Dest(address, socket.ntohs(port), forward, weight, upper, lower, True, active, inactive)
