"""A cluster's broker nodes from one Metadata request to a bootstrap server (raw socket, no client library).

Metadata v4, the oldest version both Apache Kafka 4.x (KIP-896 removed v0-v3) and Tansu answer, and the
newest without flexible (tagged-field) encoding.
Request: size, header v1 (api_key 3, api_version 4, correlation id, client_id "evmesh"), body topics = -1
(a null array), allow_auto_topic_creation = false. Response v4: size, correlation id, throttle_time_ms,
brokers [node_id int32, host string, port int32, rack nullable string], cluster_id nullable string,
controller_id int32, topics ... The reply is read only as far as controller_id: the topic metadata after
it is never read, however big, and no length from the wire sizes an allocation beyond the frame size.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import EvmeshError
from ..spec.models import Address

DISCOVERY_TIMEOUT_S = 5.0
CLIENT_ID = b"evmesh"
METADATA_API_KEY = 3
METADATA_VERSION = 4
MAX_FRAME = 1 << 30  # a response size above this is not Kafka talking
MAX_BROKERS = 100_000


class KafkaDiscoveryError(EvmeshError):
    """The bootstrap server did not answer Metadata with a usable broker list."""


@dataclass(frozen=True)
class ClusterMetadata:
    brokers: tuple[tuple[int, str, int], ...]  # (node id, host, port), sorted by node id
    controller_id: int


def metadata_request(correlation_id: int) -> bytes:
    """A complete Metadata v4 request frame: all topics (topics = null), no auto-creation."""
    header = struct.pack(">hhih", METADATA_API_KEY, METADATA_VERSION, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    body = struct.pack(">ib", -1, 0)
    return struct.pack(">i", len(header) + len(body)) + header + body


class _Cursor:
    """Big-endian reads through `read(n)` (exactly n bytes), never past the frame's declared size."""

    def __init__(self, read: Callable[[int], bytes], size: int):
        self._read = read
        self.left = size

    def take(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise KafkaDiscoveryError(f"malformed Metadata response: {what} runs past the end of the frame")
        self.left -= n
        return self._read(n)

    def int16(self, what: str) -> int:
        return struct.unpack(">h", self.take(2, what))[0]

    def int32(self, what: str) -> int:
        return struct.unpack(">i", self.take(4, what))[0]

    def string(self, what: str, nullable: bool = False) -> str | None:
        n = self.int16(what)
        if n < 0:
            if nullable and n == -1:
                return None
            raise KafkaDiscoveryError(f"malformed Metadata response: {what} has length {n}")
        return self.take(n, what).decode("utf-8", errors="replace")


def parse_metadata_response(read: Callable[[int], bytes], correlation_id: int) -> ClusterMetadata:
    """Parse a Metadata v4 response frame (size prefix included) up to controller_id."""
    size = struct.unpack(">i", read(4))[0]
    if not 12 <= size <= MAX_FRAME:
        raise KafkaDiscoveryError(f"not a Kafka Metadata response (frame size {size})")
    cur = _Cursor(read, size)
    got = cur.int32("correlation id")
    if got != correlation_id:
        raise KafkaDiscoveryError(f"Metadata response for correlation id {got}, expected {correlation_id}")
    cur.int32("throttle_time_ms")
    count = cur.int32("broker count")
    if not 0 <= count <= MAX_BROKERS:
        raise KafkaDiscoveryError(f"malformed Metadata response: broker count {count}")
    brokers: dict[int, tuple[int, str, int]] = {}
    for i in range(count):
        node_id = cur.int32(f"brokers[{i}].node_id")
        host = cur.string(f"brokers[{i}].host")
        port = cur.int32(f"brokers[{i}].port")
        cur.string(f"brokers[{i}].rack", nullable=True)
        if node_id < 0:
            raise KafkaDiscoveryError(f"broker node id {node_id} is negative")
        if not host:
            raise KafkaDiscoveryError(f"broker node {node_id} has an empty host")
        if not 1 <= port <= 65535:
            raise KafkaDiscoveryError(f"broker node {node_id} has port {port}")
        if node_id in brokers:
            raise KafkaDiscoveryError(f"broker node id {node_id} is listed twice")
        brokers[node_id] = (node_id, host, port)
    cur.string("cluster_id", nullable=True)
    controller_id = cur.int32("controller_id")
    if not brokers:
        raise KafkaDiscoveryError("the Metadata response lists no brokers")
    return ClusterMetadata(tuple(brokers[n] for n in sorted(brokers)), controller_id)


def _as_address(address: Address | str) -> Address:
    if isinstance(address, Address):
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise KafkaDiscoveryError(f'"{address}" is not host:port')
    return Address(host.strip("[]"), int(port))


def fetch_metadata(address: Address | str, timeout: float = DISCOVERY_TIMEOUT_S, correlation_id: int = 1) -> ClusterMetadata:
    """Send one Metadata request to `address` and parse the broker list; at most `timeout` seconds
    in all. Raises KafkaDiscoveryError naming the address and what went wrong."""
    addr = _as_address(address)
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    try:
        with socket.create_connection((addr.host, addr.port), timeout=remaining()) as sock:
            sock.settimeout(remaining())
            sock.sendall(metadata_request(correlation_id))

            def read(n: int) -> bytes:
                chunks, want = [], n
                while want:
                    sock.settimeout(remaining())
                    chunk = sock.recv(min(want, 65536))
                    if not chunk:
                        raise KafkaDiscoveryError("the connection closed before a complete Metadata response")
                    chunks.append(chunk)
                    want -= len(chunk)
                return b"".join(chunks)

            return parse_metadata_response(read, correlation_id)
    except KafkaDiscoveryError as exc:
        raise KafkaDiscoveryError(f"Kafka Metadata from {addr}: {exc}") from None
    except TimeoutError:
        raise KafkaDiscoveryError(f"Kafka Metadata from {addr}: no answer within {timeout:g}s") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise KafkaDiscoveryError(f"Kafka Metadata from {addr}: {reason}") from None


def discover_nodes(address: Address | str, timeout: float = DISCOVERY_TIMEOUT_S) -> list[tuple[int, str, int]]:
    """The (node id, host, port) of every broker of the cluster behind bootstrap server `address`."""
    return list(fetch_metadata(address, timeout).brokers)
