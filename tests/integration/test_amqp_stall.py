"""A fast publisher through the AMQP filter never stalls, whatever the filter must hold back: partial
frames at the end of every read, publishes held until their content header (max_body_size), a small
per-connection buffer limit (Envoy's read high watermark)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest
from amqputil import rabbitmq, start_sidecar, stat_delta  # noqa: F401  (rabbitmq is a fixture)

from evmesh.runtime.envoy import Envoy
from evmesh.runtime.rabbitmq import RabbitMQ

COUNT = 20000


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, rabbitmq: RabbitMQ) -> Iterator[tuple[Envoy, list[int]]]:  # noqa: F811
    envoy, ports = start_sidecar(
        tmp_path_factory.mktemp("envoy"), rabbitmq,
        [{"stat_prefix": "stall", "max_body_size": 4096,
          "acl": {"publish": {"deny": [{"exchange": "x", "routing_key": "never"}]}}},
         {"stat_prefix": "slow", "throttle": [{"exchange": "", "messages_per_second": 200}]}],
        buffer_limit=32768,
    )
    try:
        yield envoy, ports
    finally:
        envoy.stop()


@pytest.mark.parametrize("size", [16, 700, 4096])
def test_fast_publisher_is_not_stalled(sidecar, size: int):
    envoy, (port, _) = sidecar
    before = envoy.stats()
    conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/%2F?heartbeat=0"))
    ch = conn.channel()
    q = f"stall.{size}"
    ch.queue_declare(q)
    ch.queue_purge(q)
    body = b"s" * size
    count = COUNT if size < 1000 else COUNT // 10
    start = time.monotonic()
    for _ in range(count):
        ch.basic_publish("", q, body)  # no confirms: as fast as the socket takes it
    ch.confirm_delivery()  # a round trip: everything before it has been processed
    ch.basic_publish("", q, body)
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline:
        n = ch.queue_declare(q, passive=True).method.message_count
        if n == count + 1:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - start
    conn.close()
    assert n == count + 1, f"{n} of {count + 1} after {elapsed:.1f}s"
    after = envoy.stats()
    assert stat_delta(after, before, "evmesh.amqp.stall.exchange.other.published_msgs") == count + 1
    assert stat_delta(after, before, "evmesh.amqp.stall.c2s.protocol_errors") == 0


def test_throttle_backpressure_fills_the_buffer_and_recovers(sidecar):
    """600 messages of 1 KiB at 200/s behind a 32 KiB buffer limit: Envoy stops reading while the filter
    holds the buffer; each timer release hands the held bytes on and reads resume. Nothing is lost or
    reordered and the rate holds."""
    envoy, (_, port) = sidecar
    before = envoy.stats()
    conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/%2F?heartbeat=0"))
    ch = conn.channel()
    ch.queue_declare("slow.q")
    ch.queue_purge("slow.q")
    start = time.monotonic()
    for i in range(600):
        ch.basic_publish("", "slow.q", str(i).encode().ljust(1024, b" "))
    ch.confirm_delivery()
    ch.basic_publish("", "slow.q", b"last")
    elapsed = time.monotonic() - start
    bodies = []
    while True:
        method, _, body = ch.basic_get("slow.q", auto_ack=True)
        if method is None:
            break
        bodies.append(body)
    conn.close()
    assert [int(b) for b in bodies[:-1]] == list(range(600)) and bodies[-1] == b"last"
    assert elapsed >= 2.0, elapsed  # 200 of burst, 400 more at 200/s
    assert elapsed < 10.0, elapsed
    after = envoy.stats()
    assert stat_delta(after, before, "evmesh.amqp.slow.throttled") >= 1
    assert stat_delta(after, before, "evmesh.amqp.slow.exchange.other.published_msgs") == 601
