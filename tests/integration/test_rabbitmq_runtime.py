"""evmesh.runtime.rabbitmq: a real RabbitMQ node started on free ports and stopped by PID."""

from __future__ import annotations

import pika
import pytest

from evmesh.runtime.ports import accepts_tcp
from evmesh.runtime.rabbitmq import rabbitmq_available, start_rabbitmq

pytestmark = pytest.mark.skipif(not rabbitmq_available(), reason="rabbitmq-server is not installed")


def test_start_publish_get_and_stop(tmp_path):
    broker = start_rabbitmq("rt", tmp_path)
    try:
        assert broker.alive() and broker.epmd.alive()
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"hello")
        method, _, body = ch.basic_get(q, auto_ack=True)
        assert method is not None and body == b"hello"
        conn.close()
    finally:
        assert broker.stop() == 0
    assert not broker.alive() and not broker.epmd.alive()
    assert not accepts_tcp(broker.port)
