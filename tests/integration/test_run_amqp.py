"""AMQP through the whole control plane: `evmesh run` (and the envoy_for_spec fixture) on a spec whose
amqp broker has no address start a real RabbitMQ, a real Envoy with the evmesh amqp filter, and pika
publishes and consumes through the listener; SIGTERM stops Envoy, then RabbitMQ, by PID."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pika
import pytest
import yaml

from evmesh.runtime.ports import free_port
from evmesh.runtime.rabbitmq import rabbitmq_available

pytestmark = pytest.mark.skipif(not rabbitmq_available(), reason="rabbitmq-server is not installed")

EVMESH = Path(sys.prefix) / "bin" / "evmesh"
START_TIMEOUT_S = 90


def amqp_spec(admin_port: int, listener_port: int) -> dict:
    return {
        "version": 1,
        "admin": {"port": admin_port},
        "brokers": [{"name": "rabbit", "protocol": "amqp"}],
        "listeners": [{
            "name": "orders", "protocol": "amqp", "port": listener_port, "broker": "rabbit",
            "amqp": {
                "acl": {"publish": {"deny": [{"exchange": "", "routing_key": "secret.#"}]},
                        "consume": {"deny": ["private.#"]}},
                "exchanges": [{"name": "default", "exchange": ""}],
                "queues": [{"name": "work", "pattern": "work.#"}],
            },
        }],
    }


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def _children(pid: int) -> set[int]:
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(") ", 1)[1].split()[1]) == pid:
                    out.add(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def publish_and_consume_one(port: int, body: bytes) -> bytes:
    params = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/%2F?heartbeat=0")
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.queue_declare("work.run", durable=False)
        ch.queue_purge("work.run")
        ch.confirm_delivery()
        ch.basic_publish("", "work.run", body)  # confirmed by the broker, through the sidecar
        got: list[bytes] = []

        def on_message(channel, method, _props, payload):
            got.append(payload)
            channel.basic_ack(method.delivery_tag)
            channel.stop_consuming()

        ch.basic_consume("work.run", on_message)
        conn.call_later(10, ch.stop_consuming)
        ch.start_consuming()
        assert got, "no message consumed within 10 s"
        return got[0]
    finally:
        conn.close()


def test_evmesh_run_with_an_embedded_rabbitmq(tmp_path):
    admin_port, listener_port = free_port(), free_port()
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(amqp_spec(admin_port, listener_port), sort_keys=False))
    work = tmp_path / "work"
    proc = subprocess.Popen([str(EVMESH), "run", str(spec), "--work-dir", str(work)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    stdout: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not stdout or not stdout[-1].startswith("metrics:"):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                proc.kill()
                raise AssertionError(f"no metrics line; stdout={stdout} stderr={proc.stderr.read()}")
            stdout.append(line)

        broker_line, envoy_line, listener_line, metrics_line = stdout
        m = re.fullmatch(r"embedded amqp broker rabbit: 127\.0\.0\.1:(\d+) \(pid (\d+), log (\S+)\)", broker_line)
        assert m, broker_line
        broker_port, broker_pid = int(m.group(1)), int(m.group(2))
        envoy_pid = int(re.match(r"envoy: pid (\d+),", envoy_line).group(1))
        assert listener_line == (f"amqp listener orders: amqp://127.0.0.1:{listener_port} -> broker rabbit "
                                 f"(127.0.0.1:{broker_port})")
        assert metrics_line == f"metrics: http://127.0.0.1:{admin_port}/stats?filter=evmesh"
        node_pid = int((work / "rabbit-rabbitmq" / "rabbitmq.pid").read_text().strip())
        children = _children(proc.pid)
        assert {broker_pid, envoy_pid} <= children  # and rabbit's epmd
        assert len(children) == 3, children

        assert publish_and_consume_one(listener_port, b"through the sidecar") == b"through the sidecar"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        stderr = proc.stderr.read()
        assert "Traceback" not in stderr, stderr
        pids = children | {node_pid}
        assert all(_gone(pid) for pid in pids), {pid: _gone(pid) for pid in pids}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_envoy_for_spec_fixture_starts_rabbitmq_and_counts(envoy_for_spec):
    port = free_port()
    mesh = envoy_for_spec(amqp_spec(0, port))
    assert mesh.listener_url("orders") == f"amqp://127.0.0.1:{port}"
    (rabbit,) = mesh.brokers.values()
    assert rabbit.alive() and rabbit.node_pid is not None
    before = mesh.stats()
    assert publish_and_consume_one(port, b"x" * 300) == b"x" * 300
    after = mesh.stats()

    def delta(name: str) -> int:
        return after.get(f"evmesh.amqp.orders.{name}", 0) - before.get(f"evmesh.amqp.orders.{name}", 0)

    assert delta("connections_total") == 1
    assert delta("exchange.default.published_msgs") == 1
    assert delta("exchange.default.published_bytes") == 300
    assert delta("exchange.default.confirm_acks") == 1
    assert delta("queue.work.delivered_msgs") == 1
    assert delta("queue.work.acks") == 1
    pids = mesh.pids()
    assert len(pids) == 4  # envoy, rabbitmq-server, its Erlang VM, epmd
    mesh.stop()
    assert all(_gone(pid) for pid in pids)
