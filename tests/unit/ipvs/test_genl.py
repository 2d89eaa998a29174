"""The IPVS netlink codec: requests decode back to what was sent; netmasks have the kernel's encoding."""

import socket
import struct

import pytest

from healthd.ipvs import genl
from healthd.ipvs.model import AddDest, AddService, DeleteService, Dest, EditService, Family, Forward, Service
from tests.unit.ipvs.contract import DESTS, SERVICES, TCP


def payload(data: bytes) -> memoryview:
    ((kind, flags, seq, body),) = list(genl.messages(data))
    assert (kind, seq) == (42, 7) and flags & genl.NLM_F_ACK
    return body


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: f"{s.key}-{s.scheduler}")
def test_service_request_decodes_back(service: Service) -> None:
    for op in (AddService(service), EditService(service)):
        assert genl.decode_service(payload(genl.encode(42, 7, op))) == service.normalized()


@pytest.mark.parametrize(("key", "dest"), DESTS, ids=str)
def test_dest_request_decodes_back(key, dest: Dest) -> None:
    assert genl.decode_dest(payload(genl.encode(42, 7, AddDest(key, dest))), key.family) == dest


def test_netmask_encoding() -> None:
    v4 = Service(TCP, persistent=1, netmask=24)
    assert struct.pack("=I", genl.netmask_value(v4)) == bytes([255, 255, 255, 0])
    v6 = next(s for s in SERVICES if s.netmask == 64)
    assert genl.netmask_value(v6) == 64  # a prefix length in host order, as ipvsadm sends it


def test_service_delete_carries_only_the_key() -> None:
    body = payload(genl.encode(42, 7, DeleteService(TCP)))
    inner = genl.attrs(genl.attrs(body[4:])[genl.ATTR_SERVICE])
    assert set(inner) == {genl.SVC_AF, genl.SVC_PROTOCOL, genl.SVC_ADDR, genl.SVC_PORT}


def test_error_and_done_messages() -> None:
    err = struct.pack("=IHHII", 36, genl.NLMSG_ERROR, 0, 3, 0) + struct.pack("=i", -17) + bytes(16)
    done = struct.pack("=IHHII", 20, genl.NLMSG_DONE, 0, 4, 0) + bytes(4)
    (k1, _, s1, p1), (k2, _, s2, _) = genl.messages(err + done)
    assert (k1, s1, genl.error_code(p1)) == (genl.NLMSG_ERROR, 3, 17) and (k2, s2) == (genl.NLMSG_DONE, 4)


def test_garbage_length_is_a_decode_error() -> None:
    with pytest.raises(genl.DecodeError):
        list(genl.messages(struct.pack("=IHHII", 4, 0, 0, 0, 0)))


async def test_family_lookup_asks_the_kernel_controller() -> None:
    """get_family is a well-formed controller request: the kernel resolves "nlctrl" (id 16) with it."""
    import asyncio

    from healthd.ipvs import netlink

    sock = netlink._open_socket()
    try:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, genl.get_family(9, "nlctrl"))
        data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 5)
    finally:
        sock.close()
    ((kind, _flags, seq, body),) = list(genl.messages(data))
    assert (kind, seq) == (genl.GENL_ID_CTRL, 9)
    assert genl.family_id_of(body) == genl.GENL_ID_CTRL


def test_family_answer_without_an_id_is_a_decode_error() -> None:
    body = struct.pack("=BBH", 1, 2, 0) + struct.pack("=HH", 9, genl.CTRL_ATTR_FAMILY_NAME) + b"IPVS\0\0\0\0"
    with pytest.raises(genl.DecodeError):
        genl.family_id_of(memoryview(body))


def test_dest_dump_carries_the_connection_counters() -> None:
    """A dump's destination nest has ActiveConn and InActConn after the thresholds; drain reads them."""
    dest = Dest("10.0.0.2", 80, weight=3)
    message = genl.encode(42, 7, AddDest(TCP, dest))
    counters = struct.pack("=HHI", 8, genl.DEST_ACTIVE_CONNS, 5)
    counters += struct.pack("=HHI", 8, genl.DEST_INACT_CONNS, 9)
    # grow the destination nest (the last attribute) and the message by the two counters
    length, kind = struct.unpack_from("=HH", message, len(message) - genl._DEST_NEST.size)
    body = bytearray(message + counters)
    struct.pack_into("=HH", body, len(message) - genl._DEST_NEST.size, length + len(counters), kind)
    struct.pack_into("=I", body, 0, len(body))
    got = genl.decode_dest(payload(bytes(body)), TCP.family)
    assert got == dest and (got.active_conns, got.inactive_conns) == (5, 9)


# ---------------------------------------------------------------- batches and dumps as the kernel sends them

def test_a_batch_asks_for_one_ack_at_its_end() -> None:
    """Only the last request of a batch wants an ACK; each request is otherwise the one encode() makes."""
    service = Service(TCP, "wrr")
    dests = [Dest(f"10.0.0.{i}", 80, weight=i) for i in range(1, 5)]
    ops = [AddService(service), *(AddDest(TCP, d) for d in dests)]
    got = list(genl.messages(genl.encode_batch(42, 100, ops)))
    assert [seq for _, _, seq, _ in got] == [100, 101, 102, 103, 104]
    assert [bool(flags & genl.NLM_F_ACK) for _, flags, _, _ in got] == [False, False, False, False, True]
    assert all(flags & genl.NLM_F_REQUEST for _, flags, _, _ in got)
    assert genl.decode_service(got[0][3]) == service
    assert [genl.decode_dest(body, TCP.family) for _, _, _, body in got[1:]] == dests


def nla(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)


def kernel_dest_message(dest: Dest, family: int, counters: tuple[int, int] = (0, 0),
                        pad: bool = False) -> memoryview:
    """A destination as the kernel's dump writes it (ip_vs_genl_fill_dest): every attribute in its order,
    the statistics nests last, a 64-bit statistics nest with an alignment pad attribute or without."""
    af = socket.AF_INET6 if family == 10 else socket.AF_INET
    attrs = [nla(genl.DEST_ADDR, socket.inet_pton(af, dest.address).ljust(16, b"\0")),
             nla(genl.DEST_PORT, struct.pack("!H", dest.port)),
             nla(genl.DEST_FWD_METHOD, struct.pack("=I", genl.FWD_CODE[dest.forward])),
             nla(genl.DEST_WEIGHT, struct.pack("=I", dest.weight)),
             nla(13, b"\0"), nla(14, b"\0\0"), nla(15, b"\0\0"),  # tunnel type, port, flags
             nla(genl.DEST_U_THRESH, struct.pack("=I", dest.upper)),
             nla(genl.DEST_L_THRESH, struct.pack("=I", dest.lower)),
             nla(genl.DEST_ACTIVE_CONNS, struct.pack("=I", counters[0])),
             nla(genl.DEST_INACT_CONNS, struct.pack("=I", counters[1])),
             nla(9, struct.pack("=I", 0)),  # persistent connections
             nla(genl.DEST_ADDR_FAMILY, struct.pack("=H", family)),
             nla(10 | 0x8000, nla(1, bytes(4)) * 9),  # statistics
             nla(12 | 0x8000, (nla(0, b"") if pad else b"") + nla(1, bytes(8)) * 9)]
    body = struct.pack("=BBH", genl.CMD_NEW_DEST, 1, 0) + nla(genl.ATTR_DEST | 0x8000, b"".join(attrs))
    return memoryview(body)


def test_dump_decoder_reads_the_kernels_layout_as_the_attribute_walk_does() -> None:
    dests = [Dest("10.0.0.2", 80, Forward.MASQ, 3), Dest("10.0.0.3", 8080, Forward.GATE, 0, 100, 10),
             Dest("10.0.0.4", 443, Forward.IPIP, 65535)]
    decoder = genl.DestDecoder(Family.INET)
    for n, dest in enumerate(dests):
        message = kernel_dest_message(dest, 2, (n, 2 * n), pad=bool(n % 2))
        got = decoder(message)
        assert got == dest == genl.decode_dest(message, Family.INET)
        assert (got.active_conns, got.inactive_conns) == (n, 2 * n)
    assert decoder._layout is not None  # the fast path was taken, not only the fallback
    v6 = Dest("2001:db8::5", 53, Forward.MASQ, 7)
    assert genl.DestDecoder(Family.INET6)(kernel_dest_message(v6, 10)) == v6


def test_dump_decoder_falls_back_when_a_message_is_laid_out_otherwise() -> None:
    decoder = genl.DestDecoder(Family.INET)
    first = Dest("10.0.0.2", 80, Forward.MASQ, 3)
    assert decoder(kernel_dest_message(first, 2)) == first
    other = Dest("10.0.0.9", 81, Forward.GATE, 4, 50, 5)
    # the connection counters before the thresholds: the learned places hold other attributes now
    dest_nest = genl.encode(42, 7, AddDest(TCP, other))[16 + 4 + len(genl._service_key_nest(TCP)):]
    body = struct.pack("=BBH", genl.CMD_NEW_DEST, 1, 0) + dest_nest
    assert decoder(memoryview(body)) == other


def test_dump_decoder_refuses_a_local_node_real_as_the_walk_does() -> None:
    message = bytearray(kernel_dest_message(Dest("10.0.0.2", 80, Forward.MASQ, 3), 2))
    fwd_at = bytes(message).index(struct.pack("=HH", 8, genl.DEST_FWD_METHOD)) + 4
    struct.pack_into("=I", message, fwd_at, 1)  # IP_VS_CONN_F_LOCALNODE
    with pytest.raises(genl.DecodeError):
        genl.DestDecoder(Family.INET)(memoryview(message))


def test_dump_decoder_reads_whole_datagrams_of_its_own_dump() -> None:
    def message(kind: int, seq: int, body: bytes) -> bytes:
        return struct.pack("=IHHII", 16 + len(body), kind, 2, seq, 0) + body

    dests = [Dest("10.0.0.2", 80, Forward.MASQ, 3), Dest("10.0.0.3", 81, Forward.GATE, 4)]
    stray = message(genl.NLMSG_ERROR, 8, struct.pack("=i", 0) + bytes(16))  # an abandoned request's ACK
    data = stray + b"".join(message(42, 7, bytes(kernel_dest_message(d, 2))) for d in dests)
    decoder, out = genl.DestDecoder(Family.INET), {}
    assert decoder.feed(memoryview(data), 7, out) is None  # more to come
    assert decoder.feed(memoryview(message(genl.NLMSG_DONE, 7, bytes(4))), 7, out) == 0
    assert out == {d.key: d for d in dests}
    gone = message(genl.NLMSG_ERROR, 9, struct.pack("=i", -3) + bytes(16))  # ESRCH: the service went away
    assert genl.DestDecoder(Family.INET).feed(memoryview(gone), 9, {}) == 3
