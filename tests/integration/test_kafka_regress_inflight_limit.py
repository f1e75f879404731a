"""Regression (fixed): a client with more than 1024 requests in flight is disconnected as "malformed".

1100 small Produce requests (acks=1) written back to back on one connection, as librdkafka does with its
default max.in.flight (1000000) when batches are small or partitions many. Kafka itself answers all 1100
(it reads one request at a time per connection: backpressure). Through the sidecar: log "malformed
client-to-broker frame at offset N: more than 1024 requests in flight; closing the connection",
c2s.protocol_errors +1, the connection closed after ~1024 answers. With confluent-kafka (acks=1,
linger.ms=0, batch.num.messages=1, 5000 records) the producer reconnects and retries for ever: after 60 s
4666 records were still queued, 13 connections closed, 13659 records produced (duplicates).

Run: .venv/bin/python -m pytest tests/integration/test_kafka_regress_inflight_limit.py -q -p no:cacheprovider
"""

import socket
import struct

import pytest
from kafkautil import produce_request_v3, read_frame, sidecar_spec, stat_delta
from test_kafka_sidecar import single_leader_topic

N = 1100


@pytest.mark.parametrize("via", ["broker", "sidecar"])
def test_1100_pipelined_requests_are_all_answered(envoy_for_spec, kafka_cluster, unique_name, via):
    topic = unique_name("inflight")
    single_leader_topic(kafka_cluster, topic)  # leader: node 1
    mesh = envoy_for_spec(sidecar_spec(kafka_cluster, {"kf": {}}))
    port = kafka_cluster.port if via == "broker" else mesh.node_port("kf", 1)
    before = mesh.stats()
    frames = b"".join(produce_request_v3(topic, [f"{i}".encode()], correlation_id=i) for i in range(N))
    answered = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(frames)
        try:
            for _ in range(N):
                answered.append(struct.unpack_from(">i", read_frame(s))[0])
        except ConnectionError:
            pass
    after = mesh.stats()
    print(f"via {via}: {len(answered)} of {N} answered; c2s.protocol_errors "
          f"+{stat_delta(after, before, 'evmesh.kafka.kf.c2s.protocol_errors')}")
    assert answered == list(range(N))
    assert stat_delta(after, before, "evmesh.kafka.kf.c2s.protocol_errors") == 0
