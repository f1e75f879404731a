"""Helpers for the Kafka sidecar integration tests: a mesh spec in front of a real broker (Apache Kafka
cluster or Tansu), topics created straight on the broker, confluent-kafka produce/consume loops that
return what the client saw, and /stats deltas polled with a deadline."""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from evmesh.runtime.ports import free_port, port_is_free

BROKER = "kafka-main"

# Tansu holds the first JoinGroup for ~session.timeout.ms/2 (docs/brokers-kafka.md)
TANSU_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 300}


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _free_ports(count: int, taken: set[int]) -> list[int]:
    """Free ports below the kernel's ephemeral range: a port from free_port() is itself ephemeral, and the
    many client and inter-broker connections of a Kafka test can take it as their local port before Envoy
    binds it ("Address already in use")."""
    low, _ = _ephemeral_range()
    out: list[int] = []
    while len(out) < count:
        port = random.randrange(10000, low) if low > 11000 else free_port()
        if port not in taken and port_is_free(port):
            taken.add(port)
            out.append(port)
    return out


def sidecar_spec(broker: Any, listeners: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A mesh spec: `broker` (anything with .address and .nodes [(id, host, port)]) listed with all its
    nodes (no discovery), one kafka listener per entry (name -> kafka options) on a free port, and its
    node listeners on free ports too (not the default bootstrap port + 1 + id, which may be taken)."""
    taken: set[int] = set()
    nodes = [{"id": node_id, "address": f"{host}:{port}"} for node_id, host, port in broker.nodes]
    out = []
    for name, options in listeners.items():
        port, *node_ports = _free_ports(1 + len(nodes), taken)
        kafka = {"node_ports": {n["id"]: p for n, p in zip(nodes, node_ports, strict=True)}, **options}
        out.append({"name": name, "protocol": "kafka", "port": port, "broker": BROKER, "kafka": kafka})
    return {
        "version": 1,
        "admin": {"port": 0},
        "brokers": [{"name": BROKER, "protocol": "kafka", "address": broker.address, "nodes": nodes}],
        "listeners": out,
    }


def create_topic(bootstrap: str, topic: str, partitions: int, replication: int, timeout: float = 60) -> None:
    """Create a topic straight on the broker (not through the sidecar) and wait until every partition has
    a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, replication)], operation_timeout=30).values():
        future.result(timeout)
    partition_leaders(bootstrap, topic, partitions, timeout)


def partition_leaders(bootstrap: str, topic: str, partitions: int, timeout: float = 30) -> dict[int, int]:
    """partition -> leader node id, once every partition has one."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(topic, timeout=10).topics[topic]
        leaders = {p.id: p.leader for p in md.partitions.values()}
        if md.error is None and len(leaders) == partitions and all(x >= 0 for x in leaders.values()):
            return leaders
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: partitions without leaders after {timeout}s: {leaders} ({md.error})")
        time.sleep(0.1)


class Deliveries:
    """Delivery reports of a confluent-kafka producer: (topic, partition, key, value, error code or None)."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, int, bytes | None, bytes | None, int | None]] = []

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        self.reports.append((msg.topic(), msg.partition(), msg.key(), msg.value(), None if err is None else err.code()))

    def errors(self) -> list[tuple[str, int | None]]:
        return [(t, e) for t, _, _, _, e in self.reports if e is not None]


def produce(bootstrap: str, records: Iterable[tuple[str, Mapping[str, Any]]], timeout: float = 60,
            **conf: Any) -> Deliveries:
    """Produce (topic, produce() kwargs) records with a fresh confluent-kafka Producer; flush; return the
    delivery reports (every record must get one)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    reports = Deliveries()
    count = 0
    for topic, kwargs in records:
        producer.produce(topic, on_delivery=reports, **kwargs)
        count += 1
        producer.poll(0)
    left = producer.flush(timeout)
    assert left == 0, f"{left} records still queued after {timeout}s"
    assert len(reports.reports) == count
    return reports


Record = tuple[str, int, int, bytes | None, bytes | None, list[tuple[str, bytes]] | None]


def consume(bootstrap: str, topics: Sequence[str], count: int, group: str, timeout: float = 60,
            idle: float = 0.0, on_error: Callable[[KafkaError], bool] | None = None, **conf: Any) -> list[Record]:
    """Consume with a fresh confluent-kafka Consumer (group `group`, from the earliest offset) until `count`
    records arrived, then `idle` more seconds (to see duplicates); return (topic, partition, offset, key,
    value, headers) in arrival order. A consumer error fails unless on_error(err) returns True."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, **conf})
    got: list[Record] = []
    try:
        consumer.subscribe(list(topics))
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            _poll_into(consumer, got, on_error)
        idle_end = time.monotonic() + idle
        while time.monotonic() < idle_end:
            _poll_into(consumer, got, on_error)
    finally:
        consumer.close()
    return got


def _poll_into(consumer: Consumer, got: list[Record], on_error: Callable[[KafkaError], bool] | None) -> None:
    msg = consumer.poll(0.2)
    if msg is None:
        return
    if msg.error() is not None:
        if on_error is not None and on_error(msg.error()):
            return
        raise AssertionError(f"consumer error: {msg.error()}")
    got.append((msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers()))


def stat_delta(after: Mapping[str, int], before: Mapping[str, int], name: str) -> int:
    return after.get(name, 0) - before.get(name, 0)


def wait_stat(stats: Callable[[], Mapping[str, int]], before: Mapping[str, int], name: str, at_least: int,
              timeout: float = 10) -> dict[str, int]:
    """Poll stats() until `name` grew by at least `at_least` since `before` (counters are flushed as
    connections go on); return that snapshot (the assertion on it is the caller's)."""
    deadline = time.monotonic() + timeout
    while True:
        now = dict(stats())
        if stat_delta(now, before, name) >= at_least or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


# --- raw Kafka frames -------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def produce_request_v3(topic: str, values: Sequence[bytes], correlation_id: int = 1, acks: int = 1,
                       bad_crc: bool = False) -> bytes:
    """A whole Produce v3 frame (size included) for partition 0 of `topic`: one uncompressed record batch
    (magic 2) holding `values` (no keys, no headers); its CRC-32C off by one if bad_crc."""
    from kafka.record.util import calc_crc32c

    now = int(time.time() * 1000)
    records = b""
    for i, value in enumerate(values):
        rec = b"\x00" + _varint(0) + _varint(i) + _varint(-1) + _varint(len(value)) + value + _varint(0)
        records += _varint(len(rec)) + rec
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, now, now, -1, -1, -1, len(values)) + records
    crc = (calc_crc32c(after_crc) + (1 if bad_crc else 0)) & 0xFFFFFFFF
    body = struct.pack(">ibI", 0, 2, crc) + after_crc  # partition leader epoch, magic, crc
    batch = struct.pack(">qi", 0, len(body)) + body
    name = topic.encode()
    req = struct.pack(">hhi", -1, acks, 30000)  # transactional id null, acks, timeout
    req += struct.pack(">ih", 1, len(name)) + name + struct.pack(">iii", 1, 0, len(batch)) + batch
    header = struct.pack(">hhih", 0, 3, correlation_id, 3) + b"raw"
    return struct.pack(">i", len(header) + len(req)) + header + req


def read_frame(sock: socket.socket) -> bytes:
    """One size-prefixed Kafka frame's payload."""
    def exact(n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    (size,) = struct.unpack(">i", exact(4))
    return exact(size)
