"""The evmesh `kafka` filter between real clients (confluent-kafka, kafka-python, aiokafka) and real brokers
(Apache Kafka 4.1.1, 3 nodes; Tansu), through a real Envoy started from a mesh spec.

The cluster is shared by the session: every test uses its own topics and groups (unique_name) and its own
Envoy, and asserts on /stats deltas."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafkautil import (
    TANSU_GROUP,
    consume,
    create_topic,
    partition_leaders,
    produce,
    produce_request_v3,
    read_frame,
    sidecar_spec,
    stat_delta,
    wait_stat,
)

from evmesh.runtime.kafka import KafkaCluster, Tansu
from evmesh.testing import MeshHandle

L = "kf"  # the listener of every test
P = f"evmesh.kafka.{L}."
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture
def sidecar(envoy_for_spec, kafka_cluster: KafkaCluster) -> Callable[..., MeshHandle]:
    """sidecar(**kafka options) -> a ready Envoy whose listener L fronts the 3-node cluster."""

    def start(**options: Any) -> MeshHandle:
        return envoy_for_spec(sidecar_spec(kafka_cluster, {L: options}))

    return start


def records_for(topic: str, n: int, tag: str) -> list[tuple[str, dict[str, Any]]]:
    return [(topic, {"key": f"{tag}-k{i}".encode(), "value": f"{tag}-v{i}-".encode() * 20,
                     "headers": [("h", f"{tag}-{i}".encode()), ("n", str(i).encode())]}) for i in range(n)]


def expected(records: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]:
    return [(t, r["key"], r["value"], r["headers"]) for t, r in records]


def by_topic(got, topics) -> dict[str, list]:
    """Records as (topic, key, value, headers), grouped by topic in arrival order."""
    out: dict[str, list] = {t: [] for t in topics}
    for topic, _part, _off, key, value, headers in got:
        out.setdefault(topic, []).append((topic, key, value, headers))
    return out


def single_leader_topic(kafka_cluster: KafkaCluster, topic: str, leader: int = 1) -> None:
    """One partition led by `leader` (replicas on every node), so that requests for several such topics go to
    one broker connection, in one request."""
    others = [n for n, _, _ in kafka_cluster.nodes if n != leader]
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    new = NewTopic(topic, num_partitions=1, replica_assignment=[[leader, *others]])
    for future in admin.create_topics([new], operation_timeout=30).values():
        future.result(60)
    assert partition_leaders(kafka_cluster.bootstrap, topic, 1) == {0: leader}


def high_watermark(bootstrap: str, topic: str, partition: int = 0) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "evmesh-watermarks"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        c.close()


# --- 1. every codec, three clients ----------------------------------------------------------------------


def test_confluent_every_codec_round_trips_through_the_sidecar(sidecar, unique_name, kafka_cluster):
    mesh = sidecar()
    bootstrap = mesh.bootstrap(L)
    sent = {}
    for codec in CODECS:
        topic = unique_name(f"codec-{codec}")
        create_topic(kafka_cluster.bootstrap, topic, 1, 3)
        recs = records_for(topic, 30, codec)
        assert produce(bootstrap, recs, **{"compression.type": codec, "acks": "all"}).errors() == []
        sent[topic] = expected(recs)
    got = consume(bootstrap, list(sent), 150, unique_name("g"))
    assert by_topic(got, sent) == sent


def test_kafka_python_every_codec_round_trips_through_the_sidecar(sidecar, unique_name, kafka_cluster):
    from kafka import KafkaConsumer, KafkaProducer

    mesh = sidecar()
    bootstrap = mesh.bootstrap(L)
    sent = {}
    for codec in CODECS:
        topic = unique_name(f"kp-{codec}")
        create_topic(kafka_cluster.bootstrap, topic, 1, 3)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                 compression_type=None if codec == "none" else codec)
        recs = records_for(topic, 30, codec)
        futures = [producer.send(t, key=r["key"], value=r["value"], headers=r["headers"]) for t, r in recs]
        producer.flush(30)
        assert [f.get(10).topic for f in futures] == [topic] * 30
        producer.close(10)
        sent[topic] = expected(recs)
    consumer = KafkaConsumer(*sent, bootstrap_servers=bootstrap, group_id=unique_name("g"),
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=30000)
    got = []
    for msg in consumer:
        got.append((msg.topic, msg.partition, msg.offset, msg.key, msg.value, list(msg.headers)))
        if len(got) == 150:
            break
    consumer.close()
    assert by_topic(got, sent) == sent


def test_aiokafka_every_codec_round_trips_through_the_sidecar(sidecar, unique_name, kafka_cluster):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    mesh = sidecar()
    bootstrap = mesh.bootstrap(L)
    topics = {codec: unique_name(f"aio-{codec}") for codec in CODECS}
    for topic in topics.values():
        create_topic(kafka_cluster.bootstrap, topic, 1, 3)
    sent = {t: expected(records_for(t, 30, c)) for c, t in topics.items()}

    async def main() -> list:
        for codec, topic in topics.items():
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                        compression_type=None if codec == "none" else codec)
            await producer.start()
            try:
                batch = [await producer.send(t, key=r["key"], value=r["value"], headers=r["headers"])
                         for t, r in records_for(topic, 30, codec)]
                assert [(await f).topic for f in batch] == [topic] * 30
            finally:
                await producer.stop()
        consumer = AIOKafkaConsumer(*topics.values(), bootstrap_servers=bootstrap, group_id=unique_name("g"),
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got = []
        try:
            while len(got) < 150:
                for tp_msgs in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend((m.topic, m.partition, m.offset, m.key, m.value, list(m.headers)) for m in tp_msgs)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(asyncio.wait_for(main(), 90))
    assert by_topic(got, sent) == sent


# --- 2. idempotence, 3. transactions, 4. groups, 5. every broker -----------------------------------------


def test_idempotent_producer_records_arrive_exactly_once_in_order(sidecar, unique_name, kafka_cluster):
    mesh = sidecar()
    bootstrap = mesh.bootstrap(L)
    topic = unique_name("idem")
    create_topic(kafka_cluster.bootstrap, topic, 1, 3)
    before = mesh.stats()
    recs = [(topic, {"key": b"k", "value": f"{i:05d}".encode()}) for i in range(500)]
    assert produce(bootstrap, recs, **{"enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 50}).errors() == []
    got = consume(bootstrap, [topic], 500, unique_name("g"), idle=1.0)
    assert [v for *_, v, _h in got] == [f"{i:05d}".encode() for i in range(500)]
    assert [off for _, _, off, *_ in got] == list(range(500))
    after = mesh.stats()
    assert stat_delta(after, before, P + "api.InitProducerId.requests") >= 1
    assert stat_delta(after, before, P + "topic.other.produced_records") == 500


def test_transactions_read_committed_sees_only_committed_records(sidecar, unique_name, kafka_cluster):
    mesh = sidecar()
    bootstrap = mesh.bootstrap(L)
    topic = unique_name("txn")
    create_topic(kafka_cluster.bootstrap, topic, 1, 3)
    before = mesh.stats()
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique_name("tx"), "linger.ms": 5})
    producer.init_transactions(30)
    for tag, commit in (("c1", True), ("a1", False), ("c2", True)):
        producer.begin_transaction()
        for i in range(10):
            producer.produce(topic, key=tag.encode(), value=f"{tag}-{i}".encode())
        assert producer.flush(30) == 0  # abort_transaction purges what was not sent yet
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    committed = [f"{t}-{i}".encode() for t in ("c1", "c2") for i in range(10)]
    got = consume(bootstrap, [topic], 20, unique_name("g"), idle=1.0, **{"isolation.level": "read_committed"})
    assert [v for *_, v, _h in got] == committed
    uncommitted = consume(bootstrap, [topic], 30, unique_name("g"), idle=0.5, **{"isolation.level": "read_uncommitted"})
    assert sorted(v for *_, v, _h in uncommitted) == sorted(committed + [f"a1-{i}".encode() for i in range(10)])
    after = mesh.stats()
    assert stat_delta(after, before, P + "api.EndTxn.requests") == 3
    assert stat_delta(after, before, P + "api.AddPartitionsToTxn.requests") >= 3


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_consumer_group_rebalance_splits_partitions_and_consumes_each_record_once(sidecar, unique_name, kafka_cluster,
                                                                                   protocol):
    """classic: JoinGroup/SyncGroup with client-side assignment; consumer: KIP-848 ConsumerGroupHeartbeat."""
    mesh = sidecar()
    bootstrap = mesh.bootstrap(L)
    topic = unique_name("grp")
    create_topic(kafka_cluster.bootstrap, topic, 4, 3)
    group = unique_name("g")
    assigned: dict[str, set[int]] = {"a": set(), "b": set()}

    def member(name: str) -> Consumer:
        timing = {"session.timeout.ms": 10000, "heartbeat.interval.ms": 500} if protocol == "classic" else {}
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "group.protocol": protocol, **timing})

        # eager (classic): revoke all, assign all; incremental (consumer): only the partitions that move
        def on_assign(_c, parts):
            assigned[name] |= {p.partition for p in parts}

        def on_revoke(_c, parts):
            assigned[name] -= {p.partition for p in parts}

        c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        return c

    seen: dict[str, list[tuple[int, bytes]]] = {"a": [], "b": []}

    def poll(name: str, c: Consumer) -> None:
        msg = c.poll(0.1)
        if msg is not None:
            assert msg.error() is None, msg.error()
            assert msg.partition() in assigned[name], (name, msg.partition(), assigned)
            seen[name].append((msg.partition(), msg.value()))
            c.commit(msg, asynchronous=False)

    first = [(topic, {"key": f"k{i}".encode(), "value": f"one-{i}".encode()}) for i in range(100)]
    assert produce(bootstrap, first).errors() == []
    a = member("a")
    b = None
    try:
        deadline = time.monotonic() + 60
        while len(seen["a"]) < 100 and time.monotonic() < deadline:
            poll("a", a)
        assert assigned["a"] == {0, 1, 2, 3}
        b = member("b")
        deadline = time.monotonic() + 60
        while not (assigned["a"] and assigned["b"]) and time.monotonic() < deadline:
            poll("a", a)
            poll("b", b)
        assert assigned["a"] and assigned["b"] and not assigned["a"] & assigned["b"], assigned
        assert assigned["a"] | assigned["b"] == {0, 1, 2, 3}
        second = [(topic, {"key": f"k{i}".encode(), "value": f"two-{i}".encode()}) for i in range(200)]
        assert produce(bootstrap, second).errors() == []
        deadline = time.monotonic() + 60
        while len(seen["a"]) + len(seen["b"]) < 300 and time.monotonic() < deadline:
            poll("a", a)
            poll("b", b)
        for _ in range(10):  # anything delivered twice would show now
            poll("a", a)
            poll("b", b)
    finally:
        a.close()
        if b is not None:
            b.close()
    values = [v for name in seen for _, v in seen[name]]
    assert sorted(values) == sorted([r["value"] for _, r in first + second])
    assert len(values) == len(set(values)) == 300
    late_a = [v for _, v in seen["a"] if v.startswith(b"two-")]
    late_b = [v for _, v in seen["b"] if v.startswith(b"two-")]
    assert late_a and late_b, "both members consumed after the rebalance"


def test_partition_leaders_on_three_brokers_are_all_reached_through_node_listeners(sidecar, unique_name, kafka_cluster):
    mesh = sidecar()
    bootstrap = mesh.bootstrap(L)
    topic = unique_name("spread")
    create_topic(kafka_cluster.bootstrap, topic, 6, 3)
    leaders = partition_leaders(kafka_cluster.bootstrap, topic, 6)
    assert set(leaders.values()) == {1, 2, 3}, leaders
    # What a client learns through the sidecar: every broker at one of the sidecar's node listeners.
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {
        n: ("127.0.0.1", mesh.node_port(L, n)) for n in (1, 2, 3)}
    assert {p.id: p.leader for p in md.topics[topic].partitions.values()} == leaders
    before = mesh.stats()
    recs = [(topic, {"partition": i % 6, "key": f"k{i}".encode(), "value": f"v{i}".encode()}) for i in range(60)]
    reports = produce(bootstrap, recs, acks="all")
    assert reports.errors() == []
    assert sorted({p for _, p, *_ in reports.reports}) == list(range(6))
    got = consume(bootstrap, [topic], 60, unique_name("g"))
    assert sorted((p, v) for _, p, _, _, v, _ in got) == sorted((i % 6, f"v{i}".encode()) for i in range(60))
    after = mesh.stats()
    for node in (1, 2, 3):
        assert stat_delta(after, before, f"tcp.{L}-node-{node}.downstream_cx_total") >= 1, node
        assert stat_delta(after, before, f"tcp.{L}-node-{node}.downstream_cx_rx_bytes_total") > 0, node


# --- 6. ACL ---------------------------------------------------------------------------------------------


def test_produce_acl_denies_one_topic_of_a_request_and_the_connection_goes_on(sidecar, unique_name, kafka_cluster):
    allowed, denied = unique_name("open"), unique_name("secret")
    for t in (allowed, denied):
        single_leader_topic(kafka_cluster, t)
    mesh = sidecar(acl={"produce": {"deny": [denied]}},
                   topics=[{"name": "open", "pattern": allowed}, {"name": "secret", "pattern": denied}])
    bootstrap = mesh.bootstrap(L)
    before = mesh.stats()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 500, "acks": "all"})
    reports: list[tuple[str, bytes, int | None]] = []

    def report(err, msg):
        reports.append((msg.topic(), msg.value(), None if err is None else err.code()))

    def send(batch: list[tuple[str, bytes]]) -> list:
        reports.clear()
        for topic, value in batch:
            producer.produce(topic, value=value, on_delivery=report)
        deadline = time.monotonic() + 30  # poll, not flush: flush would not wait for linger.ms
        while len(reports) < len(batch) and time.monotonic() < deadline:
            producer.poll(0.05)
        assert producer.flush(30) == 0
        return sorted(reports)

    # warm-up: the connection to node 1 and both topics' metadata (Metadata is not filtered)
    assert send([(allowed, b"w")]) == [(allowed, b"w", None)]
    assert set(producer.list_topics(denied, timeout=10).topics) == {denied}
    mid = mesh.stats()
    # both topics at once (librdkafka 2.16 sends one partition per Produce request, and fails a topic for
    # good after error 29: this is its first; the one-request case is the kafka-python test below)
    batch = [(t, f"{t[:4]}-{i}".encode()) for i in range(5) for t in (allowed, denied)]
    assert send(batch) == sorted((t, v, None if t == allowed else KafkaError.TOPIC_AUTHORIZATION_FAILED)
                                 for t, v in batch)
    # the same connection still produces
    assert send([(allowed, b"after")]) == [(allowed, b"after", None)]
    after = mesh.stats()
    assert stat_delta(after, mid, f"tcp.{L}-node-1.downstream_cx_total") == 0, "no new connection after a denial"
    assert stat_delta(after, before, P + "topic.open.produced_records") == 7
    assert stat_delta(after, before, P + "topic.secret.produced_records") == 0
    assert stat_delta(after, before, P + "topic.secret.produce_denied") == 1
    assert stat_delta(after, before, P + "denied") == 1
    assert stat_delta(after, before, P + "c2s.protocol_errors") == 0
    producer.flush(10)
    got = consume(bootstrap, [allowed], 7, unique_name("g"))
    assert [v for *_, v, _h in got] == [b"w"] + [f"{allowed[:4]}-{i}".encode() for i in range(5)] + [b"after"]
    assert high_watermark(kafka_cluster.bootstrap, denied) == 0, "a denied record reached the broker"


def test_kafka_python_one_produce_request_with_a_denied_and_an_allowed_topic(sidecar, unique_name, kafka_cluster):
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    allowed, denied = unique_name("open"), unique_name("secret")
    for t in (allowed, denied):
        single_leader_topic(kafka_cluster, t)
    mesh = sidecar(acl={"produce": {"deny": [denied]}},
                   topics=[{"name": "open", "pattern": allowed}, {"name": "secret", "pattern": denied}])
    producer = KafkaProducer(bootstrap_servers=mesh.bootstrap(L), acks="all", linger_ms=500, retries=0)
    assert producer.partitions_for(allowed) == {0} and producer.partitions_for(denied) == {0}
    before = mesh.stats()
    ok = [producer.send(allowed, value=f"ok-{i}".encode()) for i in range(3)]
    refused = [producer.send(denied, value=f"no-{i}".encode()) for i in range(3)]
    producer.flush(30)
    assert [f.get(10).offset for f in ok] == [0, 1, 2]
    for f in refused:
        with pytest.raises(TopicAuthorizationFailedError):
            f.get(10)
    mid = mesh.stats()
    assert stat_delta(mid, before, P + "api.Produce.requests") == 1, "both topics in one Produce request"
    assert stat_delta(mid, before, P + "topic.open.produced_records") == 3
    assert stat_delta(mid, before, P + "topic.secret.produce_denied") == 1
    # the connection goes on: the next request on it succeeds
    assert producer.send(allowed, value=b"again").get(30).offset == 3
    assert stat_delta(mesh.stats(), mid, f"tcp.{L}-node-1.downstream_cx_total") == 0, "no new connection after a denial"
    producer.close(10)
    assert high_watermark(kafka_cluster.bootstrap, denied) == 0


def test_consume_acl_answers_29_for_the_denied_topic_and_never_delivers_its_records(sidecar, unique_name, kafka_cluster):
    allowed, hidden = unique_name("open"), unique_name("hidden")
    for t in (allowed, hidden):
        single_leader_topic(kafka_cluster, t)
    # records in both topics, written straight to the cluster
    recs = [(t, {"value": f"{t[:6]}-{i}".encode()}) for t in (allowed, hidden) for i in range(5)]
    assert produce(kafka_cluster.bootstrap, recs).errors() == []
    mesh = sidecar(acl={"consume": {"deny": [hidden]}},
                   topics=[{"name": "open", "pattern": allowed}, {"name": "hidden", "pattern": hidden}])
    bootstrap = mesh.bootstrap(L)
    before = mesh.stats()
    errors: list[tuple[int, str]] = []

    def on_error(err: KafkaError) -> bool:
        errors.append((err.code(), err.str()))
        return True

    # one consumer on both topics (same leader: one Fetch carries both), then one on the denied topic only
    got = consume(bootstrap, [allowed, hidden], 5, unique_name("g"), idle=1.0, on_error=on_error)
    assert [(t, v) for t, _, _, _, v, _ in got] == [(allowed, f"{allowed[:6]}-{i}".encode()) for i in range(5)]
    assert errors and {code for code, _ in errors} == {KafkaError.TOPIC_AUTHORIZATION_FAILED}, errors
    errors.clear()
    only = consume(bootstrap, [hidden], 1, unique_name("g"), timeout=3, on_error=on_error)
    assert only == []
    assert errors and {code for code, _ in errors} == {KafkaError.TOPIC_AUTHORIZATION_FAILED}, errors
    after = mesh.stats()
    assert stat_delta(after, before, P + "topic.hidden.fetched_records") == 0
    assert stat_delta(after, before, P + "topic.open.fetched_records") == 5
    assert stat_delta(after, before, P + "topic.hidden.fetch_denied") >= 2
    assert stat_delta(after, before, P + "c2s.protocol_errors") == 0
    assert stat_delta(after, before, P + "s2c.protocol_errors") == 0


# --- 7. durability and batch size -----------------------------------------------------------------------


def test_durability_requires_acks_all_and_max_batch_bytes_refuses_big_batches(sidecar, unique_name, kafka_cluster):
    strict, loose = unique_name("strict"), unique_name("loose")
    for t in (strict, loose):
        create_topic(kafka_cluster.bootstrap, t, 1, 3)
    mesh = sidecar(durability=[{"topic": strict, "min_acks": "all"}], max_batch_bytes=4096)
    bootstrap = mesh.bootstrap(L)
    before = mesh.stats()
    one = produce(bootstrap, [(strict, {"value": b"acks1"})], acks=1)
    assert [e for _, _, _, _, e in one.reports] == [KafkaError.INVALID_REQUIRED_ACKS]
    assert produce(bootstrap, [(strict, {"value": b"acks-all"})], acks="all").errors() == []
    assert produce(bootstrap, [(loose, {"value": b"acks1"})], acks=1).errors() == []
    mid = mesh.stats()
    assert stat_delta(mid, before, P + "durability_denied") == 1
    # a batch over 4096 bytes: error 10; small ones on the same topic pass
    big = produce(bootstrap, [(loose, {"value": b"x" * 6000}), ], acks=1, **{"compression.type": "none"})
    assert [e for _, _, _, _, e in big.reports] == [KafkaError.MSG_SIZE_TOO_LARGE]
    assert produce(bootstrap, [(loose, {"value": b"y" * 1000})], acks=1, **{"compression.type": "none"}).errors() == []
    after = mesh.stats()
    assert stat_delta(after, mid, P + "batch_too_large") == 1
    assert [v for *_, v, _h in consume(bootstrap, [strict], 1, unique_name("g"), idle=0.5)] == [b"acks-all"]
    assert [v for *_, v, _h in consume(bootstrap, [loose], 2, unique_name("g"), idle=0.5)] == [b"acks1", b"y" * 1000]


def test_acks_0_to_a_topic_requiring_acks_closes_the_connection(sidecar, unique_name, kafka_cluster):
    strict = unique_name("strict0")
    single_leader_topic(kafka_cluster, strict)
    mesh = sidecar(durability=[{"topic": strict, "min_acks": 1}])
    bootstrap = mesh.bootstrap(L)
    closed = f"listener.127.0.0.1_{mesh.node_port(L, 1)}.downstream_cx_destroy"
    before = mesh.stats()
    # acks=0: the client hears nothing back (its delivery "succeeds"); the sidecar drops the request and
    # closes that connection while the producer is still open
    producer = Producer({"bootstrap.servers": bootstrap, "acks": 0, "linger.ms": 0})
    reports: list[Any] = []
    producer.produce(strict, value=b"lost", on_delivery=lambda err, _m: reports.append(err))
    assert producer.flush(30) == 0 and reports == [None]
    after = wait_stat(mesh.stats, before, closed, 1)
    assert stat_delta(after, before, closed) >= 1, "the acks=0 connection was not closed"
    assert stat_delta(after, before, P + "durability_denied") == 1
    assert stat_delta(after, before, P + "c2s.protocol_errors") == 0
    assert "Produce with acks=0 refused" in mesh.log_text()
    del producer
    assert high_watermark(kafka_cluster.bootstrap, strict) == 0
    assert produce(bootstrap, [(strict, {"value": b"kept"})], acks="all").errors() == []
    assert high_watermark(kafka_cluster.bootstrap, strict) == 1


# --- 8. quotas ------------------------------------------------------------------------------------------


def test_quota_limits_the_rate_reports_throttle_time_and_keeps_every_record(sidecar, unique_name, kafka_cluster):
    topic = unique_name("slow")
    create_topic(kafka_cluster.bootstrap, topic, 1, 3)
    mesh = sidecar(quotas=[{"topic": topic, "records_per_second": 200}])
    bootstrap = mesh.bootstrap(L)
    before = mesh.stats()
    throttles: list[int] = []

    def on_stats(text: str) -> None:
        for b in json.loads(text).get("brokers", {}).values():
            throttles.append(b.get("throttle", {}).get("max", 0))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.num.messages": 20,
                         "statistics.interval.ms": 200, "stats_cb": on_stats, "client.id": unique_name("quota")})
    failed: list[Any] = []
    start = time.monotonic()
    for i in range(1000):
        producer.produce(topic, value=f"{i:04d}".encode(),
                         on_delivery=lambda err, _m: failed.append(err) if err is not None else None)
        producer.poll(0)
    assert producer.flush(60) == 0
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 2  # one more statistics round after the last response
    while max(throttles, default=0) == 0 and time.monotonic() < deadline:
        producer.poll(0.1)
    assert failed == []
    # 200 records of burst, then 200/s: 800 more need 4 s (less the last request's records, <= 20)
    assert elapsed >= 3.5, elapsed
    assert max(throttles, default=0) > 0, "librdkafka never saw throttle_time_ms"
    after = mesh.stats()
    assert stat_delta(after, before, P + "throttled") > 0
    assert stat_delta(after, before, P + "topic.other.produced_records") == 1000
    got = consume(bootstrap, [topic], 1000, unique_name("g"), idle=0.5)
    assert [v for *_, v, _h in got] == [f"{i:04d}".encode() for i in range(1000)]


def test_kafka_python_sees_the_produce_throttle_time(sidecar, unique_name, kafka_cluster):
    from kafka import KafkaProducer

    topic = unique_name("slowkp")
    create_topic(kafka_cluster.bootstrap, topic, 1, 3)
    mesh = sidecar(quotas=[{"topic": topic, "records_per_second": 100}])
    producer = KafkaProducer(bootstrap_servers=mesh.bootstrap(L), acks="all", linger_ms=5, batch_size=400)
    futures = [producer.send(topic, value=f"{i:04d}".encode()) for i in range(300)]
    producer.flush(60)
    offsets = [f.get(10).offset for f in futures]
    throttle = producer.metrics()["producer-metrics"]["throttle-time-max"]
    producer.close(10)
    assert offsets == list(range(300))
    assert throttle > 0


# --- 9. metrics -----------------------------------------------------------------------------------------


def test_metrics_count_requests_records_rewrites_and_connections(sidecar, unique_name, kafka_cluster):
    topic = unique_name("metered")
    create_topic(kafka_cluster.bootstrap, topic, 3, 3)
    mesh = sidecar(topics=[{"name": "metered", "pattern": topic}])
    bootstrap = mesh.bootstrap(L)
    before = mesh.stats()
    recs = [(topic, {"partition": i % 3, "value": f"m{i}".encode()}) for i in range(25)]
    assert produce(bootstrap, recs, acks="all").errors() == []
    got = consume(bootstrap, [topic], 25, unique_name("g"), idle=0.5)
    assert len(got) == 25
    after = wait_stat(mesh.stats, before, P + "topic.metered.fetched_records", 25)
    d = {name: stat_delta(after, before, P + name) for name in (
        "api.Produce.requests", "api.Fetch.requests", "api.Metadata.requests", "api.ApiVersions.requests",
        "api.FindCoordinator.requests", "topic.metered.produced_records", "topic.metered.produced_bytes",
        "topic.metered.fetched_records", "topic.metered.fetched_bytes", "topic.other.produced_records",
        "addresses_rewritten", "api_versions_capped", "connections_total", "c2s.protocol_errors",
        "s2c.protocol_errors", "unknown_nodes")}
    assert d["api.Produce.requests"] >= 1 and d["api.Fetch.requests"] >= 1, d
    assert d["api.Metadata.requests"] >= 2 and d["api.ApiVersions.requests"] >= 2, d
    assert d["api.FindCoordinator.requests"] >= 1, d
    assert d["topic.metered.produced_records"] == 25, d
    assert d["topic.metered.fetched_records"] == 25, d
    assert d["topic.metered.produced_bytes"] > 0 and d["topic.metered.fetched_bytes"] > 0, d
    assert d["topic.other.produced_records"] == 0, d
    assert d["addresses_rewritten"] > 0 and d["api_versions_capped"] > 0, d
    assert d["connections_total"] >= 4, d  # producer and consumer: bootstrap + node connections each
    assert d["c2s.protocol_errors"] == d["s2c.protocol_errors"] == d["unknown_nodes"] == 0, d


# --- 10. malformed traffic ------------------------------------------------------------------------------


def _closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        while s.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_malformed_frames_close_only_their_connection(sidecar, unique_name, kafka_cluster):
    topic = unique_name("bystander")
    single_leader_topic(kafka_cluster, topic)
    mesh = sidecar()
    bootstrap = mesh.bootstrap(L)
    bystander = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    reports: list[Any] = []

    def send(value: bytes) -> None:
        reports.clear()
        bystander.produce(topic, value=value, on_delivery=lambda err, msg: reports.append(err))
        assert bystander.flush(30) == 0 and reports == [None], reports

    send(b"before")
    cases = {
        "negative size": struct.pack(">i", -16) + b"\x00" * 16,
        "2 GiB size": struct.pack(">I", 0x7FFFFFFF) + b"\x00" * 64,
        "unknown api key": struct.pack(">ihhih", 10, 9999, 0, 1, -1),
        "bad CRC": produce_request_v3(topic, [b"bad"], bad_crc=True),
    }
    node1 = mesh.node_port(L, 1)  # the leader's listener, where a real produce would go
    # the raw Produce builder is sound: with a good CRC the same request is accepted
    with socket.create_connection(("127.0.0.1", node1), timeout=10) as raw:
        raw.sendall(produce_request_v3(topic, [b"raw ok"], correlation_id=5))
        answer = read_frame(raw)
    corr, _topics, _name_len = struct.unpack_from(">iih", answer)
    (error_code,) = struct.unpack_from(">h", answer, 4 + 4 + 2 + _name_len + 4 + 4)
    assert (corr, error_code) == (5, 0)
    for what, garbage in cases.items():
        before = mesh.stats()
        raw = socket.create_connection(("127.0.0.1", node1 if what == "bad CRC" else mesh.listener_port(L)), timeout=10)
        raw.sendall(garbage)
        assert _closed_within(raw, 10), f"{what}: the sidecar kept the connection"
        raw.close()
        after = wait_stat(mesh.stats, before, P + "c2s.protocol_errors", 1)
        assert stat_delta(after, before, P + "c2s.protocol_errors") == 1, what
        if what == "bad CRC":
            assert stat_delta(after, before, P + "crc_errors") == 1
        with urllib.request.urlopen(f"{mesh.admin_url}/ready", timeout=5) as resp:
            assert resp.read().strip() == b"LIVE", what
        send(what.encode())  # the producer connected all along still works
    got = consume(bootstrap, [topic], 6, unique_name("g"), idle=0.5)
    assert [v for *_, v, _h in got] == [b"before", b"raw ok", *(w.encode() for w in cases)]
    assert "malformed client-to-broker frame" in mesh.log_text()


# --- 11. Tansu ------------------------------------------------------------------------------------------


def test_tansu_produce_consume_and_produce_acl_through_the_sidecar(envoy_for_spec, tansu_broker: Tansu, unique_name):
    allowed, denied = unique_name("open"), unique_name("secret")
    for t in (allowed, denied):
        create_topic(tansu_broker.bootstrap, t, 1, 1)
    mesh = envoy_for_spec(sidecar_spec(tansu_broker, {L: {
        "acl": {"produce": {"deny": [denied]}},
        "topics": [{"name": "open", "pattern": allowed}, {"name": "secret", "pattern": denied}]}}))
    bootstrap = mesh.bootstrap(L)
    (node_id, _, _), = tansu_broker.nodes
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {node_id: ("127.0.0.1", mesh.node_port(L, node_id))}
    before = mesh.stats()
    recs = records_for(allowed, 20, "tansu")
    reports = produce(bootstrap, recs + [(denied, {"value": b"no"})], acks="all", **{"linger.ms": 200, "compression.type": "lz4"})
    assert sorted(reports.errors()) == [(denied, KafkaError.TOPIC_AUTHORIZATION_FAILED)]
    assert produce(bootstrap, [(allowed, {"key": b"late", "value": b"late", "headers": []})]).errors() == []
    got = consume(bootstrap, [allowed], 21, unique_name("g"), **TANSU_GROUP)
    assert [(k, v) for _, _, _, k, v, _ in got] == [(r["key"], r["value"]) for _, r in recs] + [(b"late", b"late")]
    assert [h for *_, h in got[:20]] == [r["headers"] for _, r in recs]
    after = mesh.stats()
    assert stat_delta(after, before, P + "topic.open.produced_records") == 21
    assert stat_delta(after, before, P + "topic.secret.produce_denied") == 1
    assert stat_delta(after, before, P + "topic.open.fetched_records") >= 21
    assert high_watermark(tansu_broker.bootstrap, denied) == 0


# --- more: version cap, DescribeCluster, fetch quota, big records, aiokafka idempotence --------------------


def api_versions(port: int) -> dict[int, tuple[int, int]]:
    """ApiVersions v0 over a raw socket: api key -> (min, max)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        header = struct.pack(">hhih", 18, 0, 11, 3) + b"raw"
        s.sendall(struct.pack(">i", len(header)) + header)
        answer = read_frame(s)
    corr, error, count = struct.unpack_from(">ihi", answer)
    assert (corr, error) == (11, 0)
    return {k: (lo, hi) for k, lo, hi in (struct.unpack_from(">hhh", answer, 10 + 6 * i) for i in range(count))}


def test_api_versions_cap_produce_and_fetch_at_v12_and_describe_cluster_is_rewritten(sidecar, kafka_cluster):
    mesh = sidecar()
    direct = api_versions(kafka_cluster.port)
    assert direct[0][1] >= 13 and direct[1][1] >= 13, "the broker offers topic-id Produce/Fetch"
    before = mesh.stats()
    for port in (mesh.listener_port(L), mesh.node_port(L, 2)):
        capped = api_versions(port)
        assert capped[0] == (direct[0][0], 12) and capped[1] == (direct[1][0], 12), capped
        assert set(capped) <= set(direct)
    assert stat_delta(wait_stat(mesh.stats, before, P + "api_versions_capped", 2), before, P + "api_versions_capped") == 2
    admin = AdminClient({"bootstrap.servers": mesh.bootstrap(L)})
    cluster = admin.describe_cluster(request_timeout=10).result(20)
    assert sorted((n.id, n.host, n.port) for n in cluster.nodes) == [
        (n, "127.0.0.1", mesh.node_port(L, n)) for n in (1, 2, 3)]
    assert cluster.controller is None or cluster.controller.port == mesh.node_port(L, cluster.controller.id)


def test_fetch_quota_slows_a_consumer_and_reports_throttle_time(sidecar, unique_name, kafka_cluster):
    topic = unique_name("slowread")
    create_topic(kafka_cluster.bootstrap, topic, 1, 3)
    values = [f"{i:04d}".encode() * 10 for i in range(600)]
    # batches of 20 records (~1 KB): a Fetch returns whole batches, so small ones keep each Fetch small
    assert produce(kafka_cluster.bootstrap, [(topic, {"value": v}) for v in values], acks="all",
                   **{"batch.num.messages": 20}).errors() == []
    mesh = sidecar(quotas=[{"topic": topic, "records_per_second": 200}])
    before = mesh.stats()
    throttles: list[int] = []

    def on_stats(text: str) -> None:
        for b in json.loads(text).get("brokers", {}).values():
            throttles.append(b.get("throttle", {}).get("max", 0))

    start = time.monotonic()
    got = consume(mesh.bootstrap(L), [topic], 600, unique_name("g"), timeout=60,
                  **{"max.partition.fetch.bytes": 2000, "fetch.max.bytes": 2000, "message.max.bytes": 2000,
                     "statistics.interval.ms": 200,
                     "stats_cb": on_stats})
    elapsed = time.monotonic() - start
    assert [v for *_, v, _h in got] == values
    # 200 records of burst, 400 more at 200/s; one Fetch (<= 2000 bytes, ~40 records) may run ahead
    assert elapsed >= 1.5, (elapsed, stat_delta(mesh.stats(), before, P + "api.Fetch.requests"))
    assert max(throttles, default=0) > 0, "librdkafka never saw throttle_time_ms in a Fetch response"
    after = mesh.stats()
    assert stat_delta(after, before, P + "throttled") > 0
    assert stat_delta(after, before, P + "topic.other.fetched_records") >= 600


@pytest.mark.parametrize("path", ["streamed", "captured", "fetch-rewritten"])
def test_big_records_cross_many_reads_both_ways(sidecar, unique_name, kafka_cluster, path):
    """900 KB values: Produce requests and Fetch responses span many reads. captured: a produce ACL makes the
    filter capture whole Produce requests; fetch-rewritten: a consume ACL denies a second topic of the same
    Fetch, so the filter captures and rewrites the big Fetch responses."""
    topic, hidden = unique_name("big"), unique_name("bighidden")
    for t in (topic, hidden):
        single_leader_topic(kafka_cluster, t)
    options = {"streamed": {}, "captured": {"acl": {"produce": {"deny": ["nothing-matches-this"]}}},
               "fetch-rewritten": {"acl": {"consume": {"deny": [hidden]}}}}[path]
    mesh = sidecar(**options)
    values = [bytes([65 + i]) * 900_000 + str(i).encode() for i in range(4)]
    before = mesh.stats()
    recs = [(topic, {"key": str(i).encode(), "value": v}) for i, v in enumerate(values)]
    assert produce(mesh.bootstrap(L), recs, acks="all", **{"compression.type": "none", "linger.ms": 50}).errors() == []
    errors: list[int] = []
    topics = [topic, hidden] if path == "fetch-rewritten" else [topic]
    got = consume(mesh.bootstrap(L), topics, 4, unique_name("g"), on_error=lambda e: errors.append(e.code()) or True)
    assert [v for *_, v, _h in got] == values
    assert set(errors) == ({KafkaError.TOPIC_AUTHORIZATION_FAILED} if path == "fetch-rewritten" else set()), errors
    after = mesh.stats()
    assert stat_delta(after, before, P + "topic.other.produced_records") == 4
    assert stat_delta(after, before, P + "topic.other.produced_bytes") >= 3_600_000
    assert stat_delta(after, before, P + "topic.other.fetched_records") >= 4
    assert stat_delta(after, before, P + "c2s.protocol_errors") == stat_delta(after, before, P + "s2c.protocol_errors") == 0


def test_aiokafka_idempotent_and_transactional_producer(sidecar, unique_name, kafka_cluster):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = unique_name("aiotx")
    create_topic(kafka_cluster.bootstrap, topic, 1, 3)
    mesh = sidecar()
    bootstrap = mesh.bootstrap(L)

    async def main() -> list[bytes]:
        idem = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
        await idem.start()
        try:
            for i in range(20):
                await idem.send_and_wait(topic, f"idem-{i}".encode())
        finally:
            await idem.stop()
        tx = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique_name("aiotx"))
        await tx.start()
        try:
            async with tx.transaction():
                for i in range(5):
                    await tx.send(topic, f"commit-{i}".encode())
            await tx.begin_transaction()
            for i in range(5):
                await tx.send_and_wait(topic, f"abort-{i}".encode())
            await tx.abort_transaction()
        finally:
            await tx.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=unique_name("g"),
                                    auto_offset_reset="earliest", isolation_level="read_committed")
        await consumer.start()
        out: list[bytes] = []
        try:
            deadline = time.monotonic() + 30
            while len(out) < 25 and time.monotonic() < deadline:
                for msgs in (await consumer.getmany(timeout_ms=300)).values():
                    out.extend(m.value for m in msgs)
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(m.value for m in msgs)
        finally:
            await consumer.stop()
        return out

    got = asyncio.run(asyncio.wait_for(main(), 90))
    assert got == [f"idem-{i}".encode() for i in range(20)] + [f"commit-{i}".encode() for i in range(5)]


def test_quotas_are_per_client_id(sidecar, unique_name, kafka_cluster):
    topic = unique_name("perclient")
    create_topic(kafka_cluster.bootstrap, topic, 1, 3)
    mesh = sidecar(quotas=[{"topic": topic, "records_per_second": 100}])
    bootstrap = mesh.bootstrap(L)

    def send_in_steps(client_id: str, batches: int) -> tuple[float, int]:
        """batches x 20 records, one request at a time; (seconds, largest throttle_time_ms seen)."""
        throttles: list[int] = []

        def on_stats(text: str) -> None:
            for b in json.loads(text).get("brokers", {}).values():
                throttles.append(b.get("throttle", {}).get("max", 0))

        producer = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "acks": "all",
                             "linger.ms": 0, "statistics.interval.ms": 100, "stats_cb": on_stats})
        producer.list_topics(topic, timeout=10)
        start = time.monotonic()
        for b in range(batches):
            for i in range(20):
                producer.produce(topic, value=f"{client_id}-{b}-{i}".encode())
            assert producer.flush(30) == 0
        elapsed = time.monotonic() - start
        time.sleep(0.25)  # one more statistics round
        producer.poll(0)
        return elapsed, max(throttles, default=0)

    slow, slow_throttle = send_in_steps(unique_name("a"), 15)  # 300 records: 100 of burst, 200 at 100/s
    fast, fast_throttle = send_in_steps(unique_name("b"), 4)  # 80 records: within b's own burst
    assert slow >= 1.6 and slow_throttle > 0, (slow, slow_throttle)
    assert fast < 1.0 and fast_throttle == 0, (fast, fast_throttle)


def test_a_node_missing_from_the_broker_map_is_advertised_at_the_bootstrap_port(envoy_for_spec, kafka_cluster):
    class TwoNodes:  # the spec lists nodes 1 and 2 only: node 3 has no node listener
        address = kafka_cluster.address
        nodes = [n for n in kafka_cluster.nodes if n[0] != 3]

    mesh = envoy_for_spec(sidecar_spec(TwoNodes, {L: {}}))
    before = mesh.stats()
    md = AdminClient({"bootstrap.servers": mesh.bootstrap(L)}).list_topics(timeout=10)
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {
        1: ("127.0.0.1", mesh.node_port(L, 1)), 2: ("127.0.0.1", mesh.node_port(L, 2)),
        3: ("127.0.0.1", mesh.listener_port(L))}
    after = wait_stat(mesh.stats, before, P + "unknown_nodes", 1)
    assert stat_delta(after, before, P + "unknown_nodes") >= 1
    assert "broker node 3 (127.0.0.1:" in mesh.log_text()


def test_a_request_over_max_frame_closes_the_connection(sidecar, unique_name, kafka_cluster):
    topic = unique_name("maxframe")
    single_leader_topic(kafka_cluster, topic)
    mesh = sidecar(max_frame=1024)
    before = mesh.stats()
    with socket.create_connection(("127.0.0.1", mesh.node_port(L, 1)), timeout=10) as raw:
        raw.sendall(produce_request_v3(topic, [b"small"], correlation_id=1, acks=-1))
        assert struct.unpack_from(">i", read_frame(raw))[0] == 1
        raw.sendall(produce_request_v3(topic, [b"x" * 2000], correlation_id=2))
        assert _closed_within(raw, 10), "a 2 KB request passed max_frame 1024"
    after = wait_stat(mesh.stats, before, P + "c2s.protocol_errors", 1)
    assert stat_delta(after, before, P + "c2s.protocol_errors") == 1
    assert high_watermark(kafka_cluster.bootstrap, topic) == 1


def test_aiokafka_and_kafka_python_get_error_29_for_denied_topics(sidecar, unique_name, kafka_cluster):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import TopicAuthorizationFailedError as AioDenied
    from kafka import KafkaConsumer
    from kafka.errors import TopicAuthorizationFailedError

    allowed, denied, hidden = unique_name("open"), unique_name("secret"), unique_name("hidden")
    for t in (allowed, denied, hidden):
        single_leader_topic(kafka_cluster, t)
    assert produce(kafka_cluster.bootstrap, [(hidden, {"value": b"h"}), (allowed, {"value": b"a"})]).errors() == []
    mesh = sidecar(acl={"produce": {"deny": [denied]}, "consume": {"deny": [hidden]}})
    bootstrap = mesh.bootstrap(L)
    before = mesh.stats()

    async def main() -> tuple[list, int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            assert (await producer.send_and_wait(allowed, b"aio-1")).offset == 1
            with pytest.raises(AioDenied):
                await asyncio.wait_for(producer.send_and_wait(denied, b"no"), 10)
            assert (await producer.send_and_wait(allowed, b"aio-2")).offset == 2
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(allowed, hidden, bootstrap_servers=bootstrap, group_id=unique_name("g"),
                                    auto_offset_reset="earliest")
        await consumer.start()
        got, refusals = [], 0
        try:
            deadline = time.monotonic() + 30
            while (len(got) < 3 or not refusals) and time.monotonic() < deadline:
                try:
                    for msgs in (await consumer.getmany(timeout_ms=300)).values():
                        got.extend((m.topic, m.value) for m in msgs)
                except AioDenied:
                    refusals += 1
        finally:
            await consumer.stop()
        return got, refusals

    got, refusals = asyncio.run(asyncio.wait_for(main(), 60))
    assert got == [(allowed, b"a"), (allowed, b"aio-1"), (allowed, b"aio-2")] and refusals > 0

    consumer = KafkaConsumer(allowed, hidden, bootstrap_servers=bootstrap, group_id=unique_name("g"),
                             auto_offset_reset="earliest")
    got, refusals = [], 0
    deadline = time.monotonic() + 30
    while (len(got) < 3 or not refusals) and time.monotonic() < deadline:
        try:
            for msgs in consumer.poll(300).values():
                got.extend((m.topic, m.value) for m in msgs)
        except TopicAuthorizationFailedError:
            refusals += 1
    consumer.close()
    assert got == [(allowed, b"a"), (allowed, b"aio-1"), (allowed, b"aio-2")] and refusals > 0
    after = mesh.stats()
    assert stat_delta(after, before, P + "topic.other.produce_denied") == 1
    assert stat_delta(after, before, P + "topic.other.fetch_denied") >= 2
    assert stat_delta(after, before, P + "c2s.protocol_errors") == stat_delta(after, before, P + "s2c.protocol_errors") == 0
    assert high_watermark(kafka_cluster.bootstrap, denied) == 0


class FakeBroker:
    """A TCP server that answers every request frame with `reply(correlation id)` bytes (then keeps reading);
    a stand-in for a broker that sends malformed responses. Stopped (thread joined) by close()."""

    def __init__(self, reply: Callable[[int], bytes]):
        import threading

        self.reply = reply
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.nodes = [(1, "127.0.0.1", self.port)]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.2)
                while not self.stopping.is_set():
                    try:
                        payload = read_frame(conn)
                    except TimeoutError:
                        continue
                    except (ConnectionError, OSError):
                        break
                    try:
                        conn.sendall(self.reply(struct.unpack_from(">i", payload, 4)[0]))
                    except OSError:
                        break

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.server.close()


def metadata_v4_request(correlation_id: int) -> bytes:
    body = struct.pack(">hhih", 3, 4, correlation_id, 3) + b"raw" + struct.pack(">ib", -1, 0)
    return struct.pack(">i", len(body)) + body


@pytest.mark.parametrize("reply", [
    lambda corr: struct.pack(">ii", 8, corr) + b"\xff\xff\xff\xff",  # Metadata v4 cut after throttle_time_ms
    lambda corr: struct.pack(">i", -5),  # a negative response size
], ids=["truncated-metadata", "negative-size"])
def test_malformed_broker_responses_close_the_connection(envoy_for_spec, reply):
    broker = FakeBroker(reply)
    try:
        mesh = envoy_for_spec(sidecar_spec(broker, {L: {}}))
        before = mesh.stats()
        with socket.create_connection(("127.0.0.1", mesh.listener_port(L)), timeout=10) as raw:
            raw.sendall(metadata_v4_request(21))
            assert _closed_within(raw, 10), "the sidecar forwarded a malformed response"
        after = wait_stat(mesh.stats, before, P + "s2c.protocol_errors", 1)
        assert stat_delta(after, before, P + "s2c.protocol_errors") == 1
        assert stat_delta(after, before, P + "c2s.protocol_errors") == 0
        assert "malformed broker-to-client frame" in mesh.log_text()
        with urllib.request.urlopen(f"{mesh.admin_url}/ready", timeout=5) as resp:
            assert resp.read().strip() == b"LIVE"
    finally:
        broker.close()


def test_one_client_id_on_two_connections_shares_its_quota(sidecar, unique_name, kafka_cluster):
    import threading

    topic = unique_name("shared")
    create_topic(kafka_cluster.bootstrap, topic, 1, 3)
    mesh = sidecar(quotas=[{"topic": topic, "records_per_second": 100}])
    client_id = unique_name("same")
    producers = [Producer({"bootstrap.servers": mesh.bootstrap(L), "client.id": client_id, "acks": "all",
                           "linger.ms": 0}) for _ in range(2)]
    for p in producers:
        p.list_topics(topic, timeout=10)

    def send(p: Producer, tag: str) -> None:
        for b in range(8):  # 8 x 20 records, one request at a time
            for i in range(20):
                p.produce(topic, value=f"{tag}-{b}-{i}".encode())
            assert p.flush(30) == 0

    start = time.monotonic()
    threads = [threading.Thread(target=send, args=(p, t)) for p, t in zip(producers, "xy", strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - start
    # 320 records, one bucket: 100 of burst, 220 at 100/s (less one request of 20 running ahead per connection);
    # two buckets would have let each connection finish in ~0.6 s
    assert elapsed >= 1.6, elapsed
    got = consume(mesh.bootstrap(L), [topic], 320, unique_name("g"), idle=0.3)
    assert len(got) == 320 and len({v for *_, v, _h in got}) == 320


def test_tansu_consume_acl_and_kafka_python_round_trip(envoy_for_spec, tansu_broker: Tansu, unique_name):
    from kafka import KafkaConsumer, KafkaProducer

    allowed, hidden = unique_name("open"), unique_name("hidden")
    for t in (allowed, hidden):
        create_topic(tansu_broker.bootstrap, t, 1, 1)
    assert produce(tansu_broker.bootstrap, [(hidden, {"value": b"h"})]).errors() == []
    mesh = envoy_for_spec(sidecar_spec(tansu_broker, {L: {"acl": {"consume": {"deny": [hidden]}}}}))
    bootstrap = mesh.bootstrap(L)
    before = mesh.stats()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
    futures = [producer.send(allowed, key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(10)]
    producer.flush(30)
    assert [f.get(10).offset for f in futures] == list(range(10))
    producer.close(10)
    consumer = KafkaConsumer(allowed, bootstrap_servers=bootstrap, group_id=unique_name("g"),
                             auto_offset_reset="earliest", session_timeout_ms=2000, heartbeat_interval_ms=300,
                             consumer_timeout_ms=20000)
    got = []
    for msg in consumer:
        got.append((msg.key, msg.value))
        if len(got) == 10:
            break
    consumer.close()
    assert got == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(10)]
    errors: list[int] = []
    only = consume(bootstrap, [hidden], 1, unique_name("g"), timeout=4,
                   on_error=lambda err: errors.append(err.code()) or True, **TANSU_GROUP)
    assert only == [] and errors and set(errors) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}, errors
    after = mesh.stats()
    assert stat_delta(after, before, P + "topic.other.fetch_denied") >= 1
    assert stat_delta(after, before, P + "c2s.protocol_errors") == stat_delta(after, before, P + "s2c.protocol_errors") == 0


def test_a_denied_topic_in_a_transaction_makes_it_abortable_and_the_next_one_commits(sidecar, unique_name, kafka_cluster):
    from confluent_kafka import KafkaException

    allowed, denied = unique_name("open"), unique_name("secret")
    for t in (allowed, denied):
        single_leader_topic(kafka_cluster, t)
    mesh = sidecar(acl={"produce": {"deny": [denied]}})
    bootstrap = mesh.bootstrap(L)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique_name("tx"), "linger.ms": 5})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(allowed, value=b"t1-ok")
    producer.produce(denied, value=b"t1-no")
    with pytest.raises(KafkaException) as info:
        producer.commit_transaction(30)
    err = info.value.args[0]
    del info  # its traceback holds this frame (and the producer) in a cycle
    assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED and err.txn_requires_abort() and not err.fatal()
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(allowed, value=b"t2-ok")
    producer.commit_transaction(30)
    got = consume(bootstrap, [allowed], 1, unique_name("g"), idle=1.0, **{"isolation.level": "read_committed"})
    assert [v for *_, v, _h in got] == [b"t2-ok"]
    # the denied partition holds only the abort marker (it was added to the transaction), no record
    assert consume(kafka_cluster.bootstrap, [denied], 1, unique_name("g"), timeout=3) == []
