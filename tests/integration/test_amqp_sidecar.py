"""The evmesh `amqp` filter between pika / aio-pika and a real RabbitMQ, through a real Envoy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest
from amqputil import rabbitmq, start_sidecar, stat_delta  # noqa: F401  (rabbitmq is a fixture)

from evmesh.runtime.envoy import Envoy
from evmesh.runtime.rabbitmq import RabbitMQ

OPEN = {"stat_prefix": "open", "exchanges": [{"name": "orders", "exchange": "orders"}],
        "queues": [{"name": "work", "pattern": "work.#"}]}
ACL = {"stat_prefix": "acl",
       "acl": {"publish": {"deny": [{"exchange": "orders", "routing_key": "secret.#"}]},
               "consume": {"deny": ["private.#"]}},
       "exchanges": [{"name": "orders", "exchange": "orders"}]}
LIMITS = {"stat_prefix": "limits", "max_body_size": 1000, "max_frame": 65536,
          "throttle": [{"exchange": "slow", "messages_per_second": 20}]}


class Sidecar:
    def __init__(self, envoy: Envoy, ports: list[int]):
        self.envoy = envoy
        self.open, self.acl, self.limits = ports

    def url(self, port: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{port}/%2F?heartbeat=0&blocked_connection_timeout=30"

    def connect(self, port: int) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url(port)))


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, rabbitmq: RabbitMQ) -> Iterator[Sidecar]:  # noqa: F811
    envoy, ports = start_sidecar(tmp_path_factory.mktemp("envoy"), rabbitmq, [OPEN, ACL, LIMITS])
    try:
        yield Sidecar(envoy, ports)
    finally:
        envoy.stop()


def setup_topology(ch, queue: str, keys: list[str], exchange: str = "orders", **queue_args) -> None:
    ch.exchange_declare(exchange, "topic", durable=False, auto_delete=False)
    ch.queue_declare(queue, durable=queue_args.pop("durable", False), arguments=queue_args or None)
    ch.queue_purge(queue)
    for key in keys:
        ch.queue_bind(queue, exchange, key)


def test_confirms_topic_wildcards_returns_acks_nacks_and_big_bodies(sidecar: Sidecar):
    before = sidecar.envoy.stats()
    conn = sidecar.connect(sidecar.open)
    ch = conn.channel()
    setup_topology(ch, "work.topic", ["eu.#", "*.urgent"])
    ch.confirm_delivery()
    ch.basic_publish("orders", "eu.de.new", b"one", mandatory=True)
    ch.basic_publish("orders", "us.urgent", b"two", mandatory=True)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("orders", "us.normal", b"lost", mandatory=True)
    big = bytes(range(256)) * 1600  # 400 KiB: many body frames of at most 131072 bytes
    ch.basic_publish("orders", "eu.big", big)
    got = []
    for _ in range(3):  # published order is kept within the queue
        method, _, body = ch.basic_get("work.topic")
        got.append((method.routing_key, body))
        if body == b"one":  # nack with requeue: it comes back, redelivered
            ch.basic_nack(method.delivery_tag, requeue=True)
            method, _, again = ch.basic_get("work.topic")
            assert again == b"one" and method.redelivered
        ch.basic_ack(method.delivery_tag)
    assert got == [("eu.de.new", b"one"), ("us.urgent", b"two"), ("eu.big", big)]
    assert ch.basic_get("work.topic")[0] is None
    conn.close()
    after = sidecar.envoy.stats()
    prefix = "evmesh.amqp.open."
    assert stat_delta(after, before, prefix + "exchange.orders.published_msgs") == 4
    assert stat_delta(after, before, prefix + "exchange.orders.published_bytes") == 3 + 3 + 4 + len(big)
    assert stat_delta(after, before, prefix + "exchange.orders.returned_msgs") == 1
    assert stat_delta(after, before, prefix + "exchange.orders.confirm_acks") >= 3
    assert stat_delta(after, before, prefix + "queue.work.delivered_msgs") == 4
    assert stat_delta(after, before, prefix + "queue.work.delivered_bytes") == 3 + 3 + 3 + len(big)
    assert stat_delta(after, before, prefix + "queue.work.acks") == 3
    assert stat_delta(after, before, prefix + "queue.work.nacks") == 1
    assert stat_delta(after, before, prefix + "c2s.protocol_errors") == 0
    assert stat_delta(after, before, prefix + "s2c.protocol_errors") == 0


def test_manual_ack_and_nack_with_requeue_through_a_consumer(sidecar: Sidecar):
    before = sidecar.envoy.stats()
    conn = sidecar.connect(sidecar.open)
    ch = conn.channel()
    setup_topology(ch, "work.consume", ["c.#"])
    for i in range(3):
        ch.basic_publish("orders", f"c.{i}", f"m{i}".encode())
    seen: list[tuple[bytes, bool]] = []

    def on_message(chan, method, _props, body):
        seen.append((body, method.redelivered))
        if body == b"m1" and not method.redelivered:
            chan.basic_nack(method.delivery_tag, requeue=True)
        else:
            chan.basic_ack(method.delivery_tag)
        if len(seen) == 4:
            chan.stop_consuming()

    ch.basic_qos(prefetch_count=1)
    ch.basic_consume("work.consume", on_message)
    conn.call_later(10, ch.stop_consuming)
    ch.start_consuming()
    conn.close()
    assert sorted(seen) == [(b"m0", False), (b"m1", False), (b"m1", True), (b"m2", False)]
    after = sidecar.envoy.stats()
    assert stat_delta(after, before, "evmesh.amqp.open.queue.work.delivered_msgs") == 4
    assert stat_delta(after, before, "evmesh.amqp.open.queue.work.acks") == 3
    assert stat_delta(after, before, "evmesh.amqp.open.queue.work.nacks") == 1


def test_denied_publish_closes_only_its_channel(sidecar: Sidecar):
    before = sidecar.envoy.stats()
    conn = sidecar.connect(sidecar.acl)
    denied = conn.channel()
    other = conn.channel()
    setup_topology(other, "acl.q", ["#"])
    denied.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        denied.basic_publish("orders", "secret.plans", b"x" * 10)
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        "ACCESS_REFUSED - write access to topic 'secret.plans' in exchange 'orders' in vhost '/' "
        "refused for user 'guest'")
    # The other channel never noticed.
    other.basic_publish("orders", "public.news", b"fine")
    method, _, body = other.basic_get("acl.q", auto_ack=True)
    assert body == b"fine"
    # A new channel (pika reuses the freed channel number) works too.
    again = conn.channel()
    again.confirm_delivery()
    again.basic_publish("orders", "public.more", b"more")
    method, _, body = again.basic_get("acl.q", auto_ack=True)
    assert body == b"more"
    conn.close()
    after = sidecar.envoy.stats()
    assert stat_delta(after, before, "evmesh.amqp.acl.exchange.orders.publish_denied") == 1
    assert stat_delta(after, before, "evmesh.amqp.acl.channels_closed_by_policy") == 1
    assert stat_delta(after, before, "evmesh.amqp.acl.exchange.orders.published_msgs") == 2


def test_denied_consume(sidecar: Sidecar):
    conn = sidecar.connect(sidecar.acl)
    ch = conn.channel()
    ch.queue_declare("private.inbox")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.basic_consume("private.inbox", lambda *a: None)
        conn.process_data_events(time_limit=1)
        ch.basic_get("private.inbox")
    assert info.value.reply_code == 403
    assert "access to queue 'private.inbox' in vhost '/' refused for user 'guest'" in info.value.reply_text
    ok = conn.channel()
    ok.queue_declare("public.inbox")
    conn.close()


def test_body_limit_refuses_with_406_and_the_connection_lives(sidecar: Sidecar):
    before = sidecar.envoy.stats()
    conn = sidecar.connect(sidecar.limits)
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare("limits.q").method.queue
    ch.queue_purge(q)
    ch.basic_publish("", q, b"a" * 1000)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.basic_publish("", q, b"b" * 1001)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000"
    ch2 = conn.channel()
    method, _, body = ch2.basic_get(q, auto_ack=True)
    assert body == b"a" * 1000
    assert ch2.basic_get(q, auto_ack=True)[0] is None
    conn.close()
    after = sidecar.envoy.stats()
    assert stat_delta(after, before, "evmesh.amqp.limits.exchange.other.body_too_large") == 1


def test_frame_max_is_capped_for_the_client(sidecar: Sidecar):
    conn = sidecar.connect(sidecar.limits)
    assert conn._impl.params.frame_max == 65536
    conn.close()


def test_throttle_holds_reads_without_loss_or_reordering(sidecar: Sidecar):
    before = sidecar.envoy.stats()
    conn = sidecar.connect(sidecar.limits)
    ch = conn.channel()
    setup_topology(ch, "limits.slow", ["#"], exchange="slow")
    ch.confirm_delivery()
    start = time.monotonic()
    for i in range(40):  # 20 of burst, then 20 at 20/s
        ch.basic_publish("slow", "k", str(i).encode())
    elapsed = time.monotonic() - start
    bodies = []
    while True:
        method, _, body = ch.basic_get("limits.slow", auto_ack=True)
        if method is None:
            break
        bodies.append(int(body))
    conn.close()
    assert bodies == list(range(40))
    assert elapsed >= 0.8, elapsed
    after = sidecar.envoy.stats()
    assert stat_delta(after, before, "evmesh.amqp.limits.throttled") >= 1


def test_aio_pika_publish_consume_with_confirms(sidecar: Sidecar):
    aio_pika = pytest.importorskip("aio_pika")

    async def main() -> list[bytes]:
        conn = await aio_pika.connect_robust(sidecar.url(sidecar.open))
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            ex = await ch.declare_exchange("orders", aio_pika.ExchangeType.TOPIC)
            q = await ch.declare_queue("work.aio", auto_delete=True)
            await q.bind(ex, "aio.*")
            for i in range(5):
                await ex.publish(aio_pika.Message(f"a{i}".encode()), routing_key=f"aio.{i}")
            out = []
            async with q.iterator() as it:
                async for msg in it:
                    async with msg.process():
                        out.append(msg.body)
                    if len(out) == 5:
                        break
            return out

    assert asyncio.run(asyncio.wait_for(main(), 30)) == [f"a{i}".encode() for i in range(5)]


def test_quorum_queue_with_dead_lettering(sidecar: Sidecar):
    conn = sidecar.connect(sidecar.open)
    ch = conn.channel()
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare("work.dead", durable=True)
    ch.queue_bind("work.dead", "dlx")
    ch.queue_declare("work.quorum", durable=True,
                     arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx"})
    ch.queue_purge("work.dead")
    ch.confirm_delivery()
    ch.basic_publish("", "work.quorum", b"doomed", pika.BasicProperties(delivery_mode=2))
    method = None
    for _ in range(50):
        method, _, body = ch.basic_get("work.quorum")
        if method:
            break
        time.sleep(0.1)
    assert method is not None and body == b"doomed"
    ch.basic_reject(method.delivery_tag, requeue=False)
    dead = None
    for _ in range(50):
        dead = ch.basic_get("work.dead", auto_ack=True)
        if dead[0]:
            break
        time.sleep(0.1)
    assert dead[0] is not None and dead[2] == b"doomed"
    conn.close()


def test_no_protocol_errors_and_envoy_alive(sidecar: Sidecar):
    stats = sidecar.envoy.stats()
    assert sidecar.envoy.alive()
    for prefix in ("open", "acl", "limits"):
        assert stats.get(f"evmesh.amqp.{prefix}.c2s.protocol_errors", 0) == 0
        assert stats.get(f"evmesh.amqp.{prefix}.s2c.protocol_errors", 0) == 0


# --- malformed traffic (keep these last: the test above asserts that nothing before it was malformed)

def _raw_amqp(port: int) -> "socket.socket":
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    head = s.recv(7)  # Connection.Start's frame header, from RabbitMQ through the sidecar
    assert head[:3] == b"\x01\x00\x00", head
    size = int.from_bytes(head[3:7], "big")
    need = size + 1
    while need:
        chunk = s.recv(need)
        assert chunk
        need -= len(chunk)
    return s


def _closed_within(s, seconds: float) -> bool:
    import socket
    s.settimeout(seconds)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


@pytest.mark.parametrize("garbage", [
    # a method frame whose frame-end octet is not 0xCE
    b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x0b\x00",
    # a frame declaring a 2 GiB payload (far above frame_max)
    b"\x01\x00\x00\x7f\xff\xff\xff" + b"\x00" * 64,
    # an unknown frame type
    b"\x09\x00\x00\x00\x00\x00\x00\xce",
], ids=["bad-frame-end", "huge-size", "bad-type"])
def test_malformed_frames_close_only_that_connection(sidecar: Sidecar, garbage: bytes):
    bystander = sidecar.connect(sidecar.open)
    ch = bystander.channel()
    ch.queue_declare("malformed.bystander", durable=False)
    ch.queue_purge("malformed.bystander")
    before = sidecar.envoy.stats()

    raw = _raw_amqp(sidecar.open)
    raw.sendall(garbage)
    assert _closed_within(raw, 10), "the sidecar kept a connection that sent a malformed frame"
    raw.close()

    deadline = time.monotonic() + 5
    while stat_delta(sidecar.envoy.stats(), before, "evmesh.amqp.open.c2s.protocol_errors") < 1 \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    after = sidecar.envoy.stats()
    assert stat_delta(after, before, "evmesh.amqp.open.c2s.protocol_errors") == 1
    assert sidecar.envoy.alive()
    # The other connection, open the whole time, still works.
    ch.basic_publish("", "malformed.bystander", b"still here")
    for _ in range(50):
        method, _, body = ch.basic_get("malformed.bystander", auto_ack=True)
        if method:
            break
        time.sleep(0.05)
    assert body == b"still here"
    bystander.close()


def test_a_non_amqp_client_is_refused_without_harm(sidecar: Sidecar):
    import socket
    before = sidecar.envoy.stats()
    s = socket.create_connection(("127.0.0.1", sidecar.open), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _closed_within(s, 10)
    s.close()
    assert sidecar.envoy.alive()
    deadline = time.monotonic() + 5
    while stat_delta(sidecar.envoy.stats(), before, "evmesh.amqp.open.c2s.protocol_errors") < 1 \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stat_delta(sidecar.envoy.stats(), before, "evmesh.amqp.open.c2s.protocol_errors") == 1
