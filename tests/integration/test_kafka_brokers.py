"""evmesh.runtime.kafka against real clients, no Envoy: Apache Kafka 4.1.1 (3 nodes and 1 node, KRaft) and
Tansu, produce and consume with confluent-kafka. The clusters are shared by the session: unique topics."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from evmesh.errors import ProcessError
from evmesh.runtime.kafka import KafkaCluster, metadata_brokers, start_kafka_cluster, start_tansu
from evmesh.runtime.ports import accepts_tcp

# Tansu holds the first JoinGroup for ~session.timeout.ms/2 (docs/brokers-kafka.md)
TANSU_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 300}


def create_topic(bootstrap: str, topic: str, partitions: int, replication: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, replication)], operation_timeout=30).values():
        future.result(60)


def partition_leaders(bootstrap: str, topic: str, partitions: int, timeout: float = 30) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader, replicas), once every partition has a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(topic, timeout=10).topics[topic]
        parts = {p.id: (p.leader, sorted(p.replicas)) for p in md.partitions.values()}
        if md.error is None and len(parts) == partitions and all(leader >= 0 for leader, _ in parts.values()):
            return parts
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: partitions without leaders after {timeout}s: {parts} ({md.error})")
        time.sleep(0.2)


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            errors.append(str(err))

    for i in range(count):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), on_delivery=delivered)
    assert producer.flush(60) == 0, "messages still queued after 60s"
    assert not errors, errors


def consume(bootstrap: str, topic: str, group: str, count: int, timeout: float = 60, **extra) -> dict[bytes, bytes]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": True, **extra,
    })
    got: dict[bytes, bytes] = {}
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                raise KafkaException(msg.error())
            got[msg.key()] = msg.value()
    finally:
        consumer.close()
    return got


def expected(count: int) -> dict[bytes, bytes]:
    return {f"k{i}".encode(): f"v{i}".encode() for i in range(count)}


def test_three_node_cluster_replicates_and_spreads_leaders(kafka_cluster: KafkaCluster, unique_name):
    assert [i for i, _, _ in kafka_cluster.nodes] == [1, 2, 3]
    assert len(set(kafka_cluster.pids())) == 3
    for _, _, port in kafka_cluster.nodes:
        assert metadata_brokers(port) == kafka_cluster.nodes
    topic = unique_name("rf3")
    create_topic(kafka_cluster.bootstrap, topic, partitions=3, replication=3)
    parts = partition_leaders(kafka_cluster.bootstrap, topic, 3)
    assert all(replicas == [1, 2, 3] for _, replicas in parts.values()), parts
    assert len({leader for leader, _ in parts.values()}) > 1, f"all partitions led by one broker: {parts}"
    produce(kafka_cluster.bootstrap, topic, 60)
    assert consume(kafka_cluster.bootstrap, topic, unique_name("g"), 60) == expected(60)


def test_single_node_auto_creates_topics(kafka_single: KafkaCluster, unique_name):
    assert [i for i, _, _ in kafka_single.nodes] == [1]
    assert kafka_single.bootstrap == f"127.0.0.1:{kafka_single.port}"
    topic = unique_name("auto")
    produce(kafka_single.bootstrap, topic, 20)  # auto.create.topics.enable: 3 partitions, replication 1
    parts = partition_leaders(kafka_single.bootstrap, topic, 3)
    assert all(replicas == [1] for _, replicas in parts.values()), parts
    assert consume(kafka_single.bootstrap, topic, unique_name("g"), 20) == expected(20)


def test_tansu_produce_consume_and_stop(tansu_broker, unique_name):
    assert tansu_broker.bootstrap == f"127.0.0.1:{tansu_broker.port}" == tansu_broker.address
    assert [(h, p) for _, h, p in tansu_broker.nodes] == [("127.0.0.1", tansu_broker.port)]
    topic = unique_name("tansu")
    create_topic(tansu_broker.bootstrap, topic, partitions=3, replication=1)
    produce(tansu_broker.bootstrap, topic, 30)
    assert consume(tansu_broker.bootstrap, topic, unique_name("g"), 30, **TANSU_GROUP) == expected(30)
    assert tansu_broker.stop() == 0
    assert not tansu_broker.alive() and not accepts_tcp(tansu_broker.port)


def test_start_tansu_has_the_embedded_broker_signature(tmp_path):
    """runtime/mesh.py's EMBEDDED_BROKERS calls starter(name, work_dir, cancel=...) and uses .port/.pid/.stop()."""
    broker = start_tansu("kafka-main", tmp_path, cancel=threading.Event())
    try:
        assert broker.alive() and broker.pid > 0 and accepts_tcp(broker.port)
        assert broker.log_path.parent == tmp_path
    finally:
        broker.stop()
    assert not broker.alive()


def test_add_broker_joins_a_running_cluster_and_stop_node(tmp_path, unique_name):
    cluster = start_kafka_cluster("grow", tmp_path, nodes=1)
    try:
        node = cluster.add_broker()
        assert node.node_id == 2 and node.roles == "broker" and node.controller_port is None
        assert [i for i, _, _ in cluster.nodes] == [1, 2]
        assert metadata_brokers(cluster.port) == cluster.nodes == metadata_brokers(node.port)
        topic = unique_name("grown")
        create_topic(cluster.bootstrap, topic, partitions=2, replication=2)
        assert all(r == [1, 2] for _, r in partition_leaders(cluster.bootstrap, topic, 2).values())
        produce(cluster.bootstrap, topic, 10)
        assert consume(cluster.bootstrap, topic, unique_name("g"), 10) == expected(10)

        pid = node.pid
        cluster.stop_node(2)
        assert not node.alive() and pid not in cluster.pids()
        assert cluster.alive() and [i for i, _, _ in cluster.nodes] == [1]
        assert metadata_brokers(cluster.port) == cluster.nodes  # fenced at once by its controlled shutdown
    finally:
        cluster.stop()
    assert cluster.pids() == [] and not cluster.alive()


def test_a_jvm_that_dies_during_start_up_reports_its_log_tail(tmp_path):
    cluster = KafkaCluster("bad", tmp_path, nodes=1, jvm_opts=["-Xmx1m", "-Xms1m"])  # too small a heap
    try:
        with pytest.raises(ProcessError) as info:
            cluster.wait_ready(timeout=60)
    finally:
        cluster.stop()
    assert "exited with code" in str(info.value)
    assert "heap" in info.value.log_tail.lower(), info.value.log_tail
