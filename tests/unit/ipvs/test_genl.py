"""The IPVS netlink codec: requests decode back to what was sent; netmasks have the kernel's encoding."""

import struct

import pytest

from healthd.ipvs import genl
from healthd.ipvs.model import AddDest, AddService, DeleteService, Dest, EditService, Service
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
