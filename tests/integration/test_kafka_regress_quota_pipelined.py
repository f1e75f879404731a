"""Regression (fixed): a kafka quota is not enforced on Produce requests that arrive in the same read.

25 Produce requests of 20 records each (500 records) are written to the partition leader's node listener
in ONE sendall, as librdkafka does by default (max.in.flight 1000000). Quota: 200 records/s (burst one
second), so the last responses should come >= (500 - 200 - 20) / 200 = 1.4 s later. Observed: every
response within a few ms; only throttle_time_ms grows. Sending the same requests one at a time (waiting
for each response) is limited as expected.

Run: .venv/bin/python -m pytest tests/integration/test_kafka_regress_quota_pipelined.py -q -p no:cacheprovider
"""

import socket
import struct
import time

import pytest
from kafkautil import produce_request_v3, read_frame, sidecar_spec
from test_kafka_sidecar import single_leader_topic


@pytest.mark.parametrize("pipelined", [False, True], ids=["one-at-a-time", "pipelined"])
def test_quota_holds_pipelined_produce_requests(envoy_for_spec, kafka_cluster, unique_name, pipelined):
    topic = unique_name("q")
    single_leader_topic(kafka_cluster, topic)  # leader: node 1
    mesh = envoy_for_spec(sidecar_spec(kafka_cluster, {"kf": {"quotas": [{"topic": topic, "records_per_second": 200}]}}))
    frames = [produce_request_v3(topic, [f"{i}-{j}".encode() for j in range(20)], correlation_id=i) for i in range(25)]
    throttles = []
    with socket.create_connection(("127.0.0.1", mesh.node_port("kf", 1)), timeout=30) as s:
        start = time.monotonic()
        if pipelined:
            s.sendall(b"".join(frames))
            answers = [read_frame(s) for _ in frames]
        else:
            answers = []
            for f in frames:
                s.sendall(f)
                answers.append(read_frame(s))
        elapsed = time.monotonic() - start
    throttles = [struct.unpack(">i", a[-4:])[0] for a in answers]
    print(f"pipelined={pipelined} elapsed={elapsed:.2f}s throttle_time_ms={throttles}")
    assert [struct.unpack_from(">i", a)[0] for a in answers] == list(range(25))
    assert elapsed >= 1.4, f"500 records at 200/s answered in {elapsed:.2f}s (throttle_time_ms {throttles})"
