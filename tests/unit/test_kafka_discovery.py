"""Node discovery: one Metadata v4 request over a raw socket, against a tiny in-test server that speaks it
(and, when the Tansu binary is installed, against a real Tansu)."""

from __future__ import annotations

import io
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from evmesh.kafka import ClusterMetadata, KafkaDiscoveryError, discover_nodes, fetch_metadata
from evmesh.kafka.discovery import metadata_request, parse_metadata_response
from evmesh.runtime.ports import free_port
from evmesh.spec.models import Address


def _string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def metadata_response(correlation_id: int, brokers: list[tuple[int, str, int, str | None]], controller_id: int,
                      topics: bytes = struct.pack(">i", 0), cluster_id: str | None = "c1") -> bytes:
    body = struct.pack(">iii", correlation_id, 0, len(brokers))  # correlation id, throttle_time_ms, broker count
    for node_id, host, port, rack in brokers:
        body += struct.pack(">i", node_id) + _string(host) + struct.pack(">i", port) + _string(rack)
    body += _string(cluster_id) + struct.pack(">i", controller_id) + topics
    return struct.pack(">i", len(body)) + body


def _declared_short(frame: bytes, n: int) -> bytes:
    """The frame with a size field n bytes short of its body."""
    return struct.pack(">i", len(frame) - 4 - n) + frame[4:]


def _topics(n: int) -> bytes:
    """n topics of Metadata v4 (error, name, is_internal, no partitions): bytes the client never reads."""
    out = struct.pack(">i", n)
    for i in range(n):
        out += struct.pack(">h", 0) + _string(f"topic-{i}") + b"\x00" + struct.pack(">i", 0)
    return out


class MetadataServer:
    """Accepts connections on 127.0.0.1; for each, reads one size-prefixed request and calls answer(request)."""

    def __init__(self, answer: Callable[[bytes], bytes | None]):
        self.answer = answer
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                data = b""
                while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data)
                reply = self.answer(data)
                if reply is None:
                    self._stop.wait(2)  # say nothing
                else:
                    conn.sendall(reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[bytes], bytes | None]], MetadataServer]]:
    servers: list[MetadataServer] = []

    def start(answer):
        s = MetadataServer(answer)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def _correlation(request: bytes) -> int:
    return struct.unpack_from(">i", request, 8)[0]


def test_request_is_metadata_v4_for_all_topics():
    req = metadata_request(7)
    size, api_key, version, correlation, client_len = struct.unpack_from(">ihhih", req)
    assert (size, api_key, version, correlation, client_len) == (len(req) - 4, 3, 4, 7, 6)
    assert req[14:20] == b"evmesh"
    assert struct.unpack_from(">ib", req, 20) == (-1, 0)  # topics: null array; allow_auto_topic_creation: false
    assert len(req) == 25


def test_discovers_brokers_sorted_by_node_id(server):
    brokers = [(2, "kafka-2.internal", 9093, "rack-b"), (1, "127.0.0.1", 9092, None)]
    srv = server(lambda req: metadata_response(_correlation(req), brokers, 2, _topics(3)))
    meta = fetch_metadata(f"127.0.0.1:{srv.port}")  # cluster id "c1"
    assert meta == ClusterMetadata(((1, "127.0.0.1", 9092), (2, "kafka-2.internal", 9093)), controller_id=2)
    assert discover_nodes(Address("127.0.0.1", srv.port)) == [(1, "127.0.0.1", 9092), (2, "kafka-2.internal", 9093)]
    assert srv.requests[0][:4] == struct.pack(">i", 21) and srv.requests[0][4:8] == struct.pack(">hh", 3, 4)


def test_topic_metadata_after_the_controller_is_never_read():
    """The reply is read only up to controller_id, whatever follows; fed all at once or byte by byte."""
    frame = metadata_response(5, [(0, "h", 1, "r")], 0, _topics(1000), cluster_id=None)
    stream = io.BytesIO(frame + b"garbage after the frame")
    assert parse_metadata_response(stream.read, 5) == ClusterMetadata(((0, "h", 1),), 0)
    consumed = stream.tell()
    assert consumed == len(metadata_response(5, [(0, "h", 1, "r")], 0, b"", cluster_id=None))

    stream = io.BytesIO(frame)

    def one_byte_at_a_time(n: int) -> bytes:
        return b"".join(stream.read(1) for _ in range(n))

    assert parse_metadata_response(one_byte_at_a_time, 5).brokers == ((0, "h", 1),)


@pytest.mark.parametrize("frame, problem", [
    (metadata_response(9, [(1, "h", 1, None)], 1), "Metadata response for correlation id 9, expected 1"),
    (metadata_response(1, [], -1), "the Metadata response lists no brokers"),
    (metadata_response(1, [(1, "", 1, None)], 1), "broker node 1 has an empty host"),
    (metadata_response(1, [(1, "h", 0, None)], 1), "broker node 1 has port 0"),
    (metadata_response(1, [(-1, "h", 1, None)], 1), "broker node id -1 is negative"),
    (metadata_response(1, [(1, "h", 1, None), (1, "g", 2, None)], 1), "broker node id 1 is listed twice"),
    (struct.pack(">iiii", 12, 1, 0, 5), "malformed Metadata response: brokers[0].node_id runs past the end of the frame"),
    (struct.pack(">iiii", 16, 1, 0, -3) + b"\0" * 4, "malformed Metadata response: broker count -3"),
    (struct.pack(">iiiiih", 18, 1, 0, 1, 1, -1), "malformed Metadata response: brokers[0].host has length -1"),
    (_declared_short(metadata_response(1, [(1, "h", 1, None)], 1, b""), 4),
     "malformed Metadata response: controller_id runs past the end of the frame"),
    (b"HTTP/1.1 400 Bad Request\r\n", "not a Kafka Metadata response (frame size 1213486160)"),
])
def test_malformed_responses(frame, problem):
    with pytest.raises(KafkaDiscoveryError) as exc:
        parse_metadata_response(io.BytesIO(frame + b"\0" * 64).read, 1)
    assert str(exc.value) == problem


def test_errors_name_the_address(server):
    port = free_port()
    with pytest.raises(KafkaDiscoveryError) as exc:
        discover_nodes(f"127.0.0.1:{port}")
    assert str(exc.value) == f"Kafka Metadata from 127.0.0.1:{port}: Connection refused"

    silent = server(lambda req: None)
    with pytest.raises(KafkaDiscoveryError) as exc:
        discover_nodes(f"127.0.0.1:{silent.port}", timeout=0.3)
    assert str(exc.value) == f"Kafka Metadata from 127.0.0.1:{silent.port}: no answer within 0.3s"

    short = server(lambda req: metadata_response(_correlation(req), [(1, "h", 1, None)], 1)[:10])
    with pytest.raises(KafkaDiscoveryError) as exc:
        discover_nodes(f"127.0.0.1:{short.port}")
    assert str(exc.value) == (f"Kafka Metadata from 127.0.0.1:{short.port}: "
                              "the connection closed before a complete Metadata response")


def test_against_a_real_tansu(tmp_path):
    """Tansu answers Metadata v4 (so does Apache Kafka 4.x, which no longer answers v0-v3)."""
    from evmesh.errors import EvmeshError
    from evmesh.runtime.kafka import start_tansu

    try:
        broker = start_tansu("tansu", tmp_path)
    except EvmeshError as exc:
        pytest.fail(f"{exc} (this test needs the tansu binary)", pytrace=False)
    try:
        nodes = discover_nodes(f"127.0.0.1:{broker.port}")
    finally:
        broker.stop()
    assert len(nodes) == 1
    (node_id, host, port), = nodes
    assert node_id >= 0 and host in ("127.0.0.1", "localhost") and port == broker.port
