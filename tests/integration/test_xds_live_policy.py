"""Live policy and Kafka broker discovery end to end: `evmesh xds serve` (the real CLI, following edits of its
spec file) managing a real Envoy with the evmesh module over ADS, real brokers behind it, real clients.

- A long-lived client connection is allowed, a spec edit denies it, the next edit allows it again: on the
  SAME connection (NATS: nats-py, Kafka: confluent-kafka), or a new channel on the same connection (AMQP:
  pika), each time within 1 s of the edit; the policy-only edit changes no Listener resource, so Envoy
  modifies and drains nothing (listener_manager stats).
- A broker added to a running Apache Kafka cluster (KafkaCluster.add_broker()) is discovered: the sidecar
  gets the node listener without a restart, and a client produces through it to a partition the new broker
  leads.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pika
import pytest
import yaml
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from evmesh.errors import EvmeshError
from evmesh.render.bootstrap import render_ads_yaml
from evmesh.runtime.envoy import Envoy
from evmesh.runtime.kafka import ensure_kafka_jars, start_kafka_cluster
from evmesh.runtime.ports import accepts_tcp, free_port, wait_until
from evmesh.runtime.process import ManagedProcess
from evmesh.spec import load_spec_data

NODE_CLUSTER = "evmesh"
PROPAGATION_S = 1.0  # spec edit -> the same open connection judged by the new policy
# listener_manager counters that move when Envoy modifies (and so drains) a listener
NO_DRAIN = ("listener_manager.listener_modified", "listener_manager.listener_in_place_updated",
            "listener_manager.listener_removed", "listener_manager.lds.update_success")


class Serve:
    """`evmesh xds serve SPEC --policy-port P` as a process; edit() rewrites SPEC (atomically)."""

    def __init__(self, work: Path, data: dict[str, Any], discovery_interval: float = 2.0, live: bool = True,
                 extra: tuple[str, ...] = ()):
        self.work = work
        self.ads_port, self.policy_port = free_port(), (free_port() if live else 0)  # 0: policies inline
        self.path = work / "mesh.yaml"
        self.data = data
        self._write(data)
        evmesh = Path(sys.prefix) / "bin" / "evmesh"
        argv = [evmesh, "xds", "serve", self.path, "--port", str(self.ads_port), "--policy-port", str(self.policy_port),
                "--poll-interval", "0.05", "--discovery-interval", str(discovery_interval), *extra]
        self.proc = ManagedProcess("evmesh-xds", argv, work / "serve.log", env=dict(os.environ),
                                   stop_signal=signal.SIGTERM)
        self.wait_log(r"ADS server on 127\.0\.0\.1:\d+")

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
        tmp.replace(self.path)

    def edit(self, change: Callable[[dict[str, Any]], None]) -> float:
        """Apply change(data) to the spec file; returns the monotonic time of the write."""
        change(self.data)
        self._write(self.data)
        return time.monotonic()

    def wait_log(self, pattern: str, timeout: float = 30.0) -> re.Match:
        rx = re.compile(pattern, re.M)
        found: list[re.Match] = []

        def seen() -> bool:
            m = rx.search(self.proc.log_text())
            if m:
                found.append(m)
            return bool(m) or not self.proc.alive()

        assert wait_until(seen, timeout, 0.02) and found, f"{pattern!r} not in log:\n{self.proc.log_tail(60)}"
        return found[0]

    def policies(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.policy_port}/v1/policies", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        rc = self.proc.stop()
        assert rc == 0, self.proc.log_tail()
        assert "Traceback" not in self.proc.log_text(), self.proc.log_text()


class Sidecar:
    """Envoy on an ADS-only bootstrap pointing at a Serve."""

    def __init__(self, work: Path, serve: Serve, ports: list[int]):
        self.admin_port = free_port()
        cfg = work / "envoy.yaml"
        spec = load_spec_data(serve.data, native_check=False)
        cfg.write_text(render_ads_yaml(spec, f"127.0.0.1:{serve.ads_port}", "sidecar-1", NODE_CLUSTER, "sotw",
                                       admin_port=self.admin_port))
        self.envoy = Envoy(cfg, self.admin_port, ports, work / "envoy.log")

    def stats(self) -> dict[str, int]:
        return self.envoy.stats()

    def assert_nothing_drained(self, before: dict[str, int]) -> None:
        after = self.stats()
        moved = {k: after.get(k, 0) - before.get(k, 0) for k in NO_DRAIN if after.get(k, 0) != before.get(k, 0)}
        assert not moved, f"Envoy changed listeners on a policy-only edit: {moved}"
        assert after.get("listener_manager.total_listeners_draining", 0) == 0
        assert after.get("listener_manager.total_filter_chains_draining", 0) == 0
        assert after.get("listener_manager.lds.update_rejected", 0) == 0


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Callable[..., tuple[Serve, Sidecar]]]:
    """mesh(spec data, ports to wait for, discovery_interval=2.0) -> (serve, sidecar), both stopped by PID.
    live=False: `--policy-port 0`, policies inline in the listeners (today's LDS-only behaviour)."""
    started: list[Any] = []

    def start(data: dict[str, Any], ports: list[int], discovery_interval: float = 2.0,
              live: bool = True, extra: tuple[str, ...] = ()) -> tuple[Serve, Sidecar]:
        serve = Serve(tmp_path, data, discovery_interval, live, extra)
        started.append(serve)
        serve.wait_log(r"snapshot 1 for node key evmesh: .*; policy \w+" if live else r"snapshot 1 for node key")
        sidecar = Sidecar(tmp_path, serve, ports)
        started.append(sidecar)
        first = serve.wait_log(r"LDS (ACK|NACK) of version \w+ \(.*snapshot 1\).*$")
        if first.group(1) == "NACK":  # e.g. a module that does not take "policy" yet
            pytest.fail(f"Envoy rejected the first listeners: {first.group(0)}\n"
                        + "\n".join(x for x in sidecar.envoy.log_text().splitlines() if "evmesh:" in x), pytrace=False)
        sidecar.envoy.wait_ready()
        if live:
            serve.wait_log(r"policy ACK version \w+")
        return serve, sidecar

    yield start
    errors = []
    for thing in reversed(started):
        try:
            if isinstance(thing, Sidecar):
                thing.envoy.stop()
            else:
                thing.stop()
        except (AssertionError, EvmeshError) as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def until(check: Callable[[], str], expected: str, within: float, started: float) -> tuple[str, float]:
    """check() repeatedly until it returns `expected` or `within` seconds after `started` have passed;
    returns (last result, seconds from `started` to it)."""
    while True:
        got = check()
        elapsed = time.monotonic() - started
        if got == expected or elapsed > within:
            return got, elapsed
        time.sleep(0.02)


# ---- NATS ------------------------------------------------------------------------------------------------


def nats_data(broker_address: str, port: int, allow: list[str]) -> dict[str, Any]:
    return {
        "version": 1, "admin": {"port": 0},
        "brokers": [{"name": "nats-main", "protocol": "nats", "address": broker_address}],
        "listeners": [{"name": "orders", "protocol": "nats", "port": port, "broker": "nats-main",
                       "nats": {"acl": {"publish": {"allow": allow}}}}],
    }


def set_nats_allow(allow: list[str]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["listeners"][0]["nats"]["acl"]["publish"]["allow"] = allow
    return change


async def test_nats_same_connection_denied_then_allowed(broker, mesh):
    port = free_port()
    serve, sidecar = mesh(nats_data(broker.address, port, ["orders.>"]), [port])
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, error_cb=on_error)
    direct = await nats.connect(broker.url, allow_reconnect=False)
    sub = await direct.subscribe("orders.live")
    await direct.flush()

    async def outcome() -> str:
        """One publish on the long-lived connection: "delivered" or the -ERR nats-py reported."""
        seen_errors, seen_msgs = len(errors), sub.pending_msgs
        await nc.publish("orders.live", b"x")
        await nc.flush()
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            if sub.pending_msgs > seen_msgs:
                return "delivered"
            if len(errors) > seen_errors:
                return errors[-1]
            await asyncio.sleep(0.005)
        return "nothing"

    async def until_async(expected: str, started: float) -> tuple[str, float]:
        while True:
            got = await outcome()
            elapsed = time.monotonic() - started
            if got == expected or elapsed > PROPAGATION_S + 1:
                return got, elapsed
            await asyncio.sleep(0.01)

    try:
        assert await outcome() == "delivered"
        stats = sidecar.stats()
        denied = 'nats: permissions violation for publish to "orders.live"'
        got, took = await until_async(denied, serve.edit(set_nats_allow(["billing.>"])))
        assert (got, took < PROPAGATION_S) == (denied, True), (got, took)
        v2 = serve.wait_log(r"snapshot 2 for node key .*; policy (\w+)$").group(1)
        serve.wait_log(rf"INFO policy ACK version {v2}$", 5)  # the module reported it applied
        got, took = await until_async("delivered", serve.edit(set_nats_allow(["orders.>"])))
        assert (got, took < PROPAGATION_S) == ("delivered", True), (got, took)
        assert nc.is_connected
        serve.wait_log(r"snapshot 3 for node key")
        after = sidecar.stats()
        assert after["evmesh.nats.orders.connections_total"] == stats["evmesh.nats.orders.connections_total"]
        sidecar.assert_nothing_drained(stats)
    finally:
        await nc.close()
        await direct.close()


async def test_a_policy_the_module_rejects_is_nacked_once_and_the_old_one_stays(broker, mesh):
    """--no-native-check lets through a policy only the module's parser refuses (over 1024 patterns): the
    module keeps the previous policy on the open connection, reports the NACK once, and is not sent the
    same version again; the next good edit applies.

    Every listener config re-parses a new document as soon as it arrives, so the NACK rides on the very next
    poll: it reaches the server within a few seconds (not after the 30 s long-poll)."""
    port = free_port()
    serve, sidecar = mesh(nats_data(broker.address, port, ["orders.>"]), [port], extra=("--no-native-check",))
    nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
    direct = await nats.connect(broker.url, allow_reconnect=False)
    sub = await direct.subscribe("orders.kept")
    await direct.flush()
    try:
        serve.edit(set_nats_allow([f"other{i}.>" for i in range(1025)]))
        v2 = serve.wait_log(r"snapshot 2 for node key .*; policy (\w+)$").group(1)
        serve.wait_log(rf"INFO policy ACK version {v2}$", 5)  # received
        await nc.publish("orders.kept", b"still allowed")  # the connection looks at the new document now
        await nc.flush()
        await asyncio.sleep(0.3)
        assert sub.pending_msgs == 1, "the rejected policy was applied"
        nack = serve.wait_log(rf"WARNING policy NACK version {v2} for orders: (.*)$", 5)
        assert "too many patterns" in nack.group(1), nack.group(0)
        assert "rejected, keeping the previous one" in sidecar.envoy.log_text()
        time.sleep(1.0)
        assert serve.proc.log_text().count("policy NACK") == 1
        serve.edit(set_nats_allow(["billing.>"]))
        v3 = serve.wait_log(r"snapshot 3 for node key .*; policy (\w+)$").group(1)
        serve.wait_log(rf"INFO policy ACK version {v3}$", 5)
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc2 = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, error_cb=on_error)
        await nc2.publish("orders.kept", b"denied now")
        await nc2.flush()
        await asyncio.sleep(0.3)
        assert errors == ['nats: permissions violation for publish to "orders.kept"'] and sub.pending_msgs == 1
        await nc2.close()
        assert serve.proc.log_text().count("policy NACK") == 1
    finally:
        await nc.close()
        await direct.close()


# ---- AMQP ------------------------------------------------------------------------------------------------


def amqp_data(broker_address: str, port: int, routing_key: str) -> dict[str, Any]:
    return {
        "version": 1, "admin": {"port": 0},
        "brokers": [{"name": "rabbit", "protocol": "amqp", "address": broker_address}],
        "listeners": [{"name": "work", "protocol": "amqp", "port": port, "broker": "rabbit",
                       "amqp": {"acl": {"publish": {"allow": [{"exchange": "", "routing_key": routing_key}]}}}}],
    }


def set_amqp_key(routing_key: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["listeners"][0]["amqp"]["acl"]["publish"]["allow"] = [{"exchange": "", "routing_key": routing_key}]
    return change


def test_amqp_channel_closed_403_then_a_new_channel_publishes(rabbitmq_server, mesh):
    port = free_port()
    serve, sidecar = mesh(amqp_data(rabbitmq_server.address, port, "work.#"), [port])
    conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/%2F?heartbeat=0"))
    state: dict[str, Any] = {}

    def channel():
        ch = conn.channel()
        ch.confirm_delivery()
        state["ch"] = ch
        return ch

    def publish() -> str:
        """One confirmed publish to work.live on the current channel (a new one if it was closed)."""
        ch = state.get("ch")
        if ch is None or not ch.is_open:
            ch = channel()
        try:
            ch.basic_publish("", "work.live", b"x")
            return "confirmed"
        except pika.exceptions.ChannelClosedByBroker as exc:
            return f"{exc.reply_code} {exc.reply_text.split(' - ')[0]}"

    try:
        ch = channel()
        ch.queue_declare("work.live", auto_delete=True)
        assert publish() == "confirmed"
        stats = sidecar.stats()
        got, took = until(publish, "403 ACCESS_REFUSED", PROPAGATION_S + 1, serve.edit(set_amqp_key("other.#")))
        assert (got, took < PROPAGATION_S) == ("403 ACCESS_REFUSED", True), (got, took)
        assert conn.is_open
        serve.wait_log(r"snapshot 2 for node key")
        started = serve.edit(set_amqp_key("work.#"))
        got, took = until(publish, "confirmed", PROPAGATION_S + 1, started)  # new channels, same connection
        assert (got, took < PROPAGATION_S) == ("confirmed", True), (got, took)
        serve.wait_log(r"snapshot 3 for node key")
        after = sidecar.stats()
        assert after["evmesh.amqp.work.connections_total"] == stats["evmesh.amqp.work.connections_total"]
        assert after["evmesh.amqp.work.channels_closed_by_policy"] >= stats.get("evmesh.amqp.work.channels_closed_by_policy", 0) + 1
        sidecar.assert_nothing_drained(stats)
    finally:
        conn.close()


# ---- Kafka -----------------------------------------------------------------------------------------------


def create_topic(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Create a topic (replication 1) straight on the broker; partition -> leader once all have one."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30).values():
        future.result(60)
    deadline = time.monotonic() + 30
    while True:
        md = admin.list_topics(topic, timeout=10).topics[topic]
        leaders = {p.id: p.leader for p in md.partitions.values()}
        if md.error is None and len(leaders) == partitions and all(x >= 0 for x in leaders.values()):
            return leaders
        assert time.monotonic() < deadline, f"{topic}: partitions without leaders: {leaders} ({md.error})"
        time.sleep(0.1)


def kafka_data(broker: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Listener "k" in front of `broker` (.address, .nodes), its nodes listed (no discovery), every port free."""
    nodes = [{"id": node_id, "address": f"{host}:{port}"} for node_id, host, port in broker.nodes]
    return {
        "version": 1, "admin": {"port": 0},
        "brokers": [{"name": "kafka-main", "protocol": "kafka", "address": broker.address, "nodes": nodes}],
        "listeners": [{"name": "k", "protocol": "kafka", "port": free_port(), "broker": "kafka-main",
                       "kafka": {"node_ports": {n["id"]: free_port() for n in nodes}, **options}}],
    }


def set_kafka_allow(allow: list[str]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["listeners"][0]["kafka"]["acl"] = {"produce": {"allow": allow}}
    return change


def test_kafka_same_producer_denied_then_allowed(tansu_broker, mesh):
    data = kafka_data(tansu_broker, {"acl": {"produce": {"allow": ["orders-*"]}}})
    lst = data["listeners"][0]
    ports = [lst["port"], *lst["kafka"]["node_ports"].values()]
    serve, sidecar = mesh(data, ports)
    topic = "orders-live"
    create_topic(tansu_broker.bootstrap, topic, 1)
    # After a TOPIC_AUTHORIZATION_FAILED librdkafka holds the topic as failed until its next metadata
    # refresh (produce() raises at once): refresh often, so "allowed again" shows within the second.
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{lst['port']}", "linger.ms": 0, "acks": "all",
                         "message.timeout.ms": 3000, "retries": 0, "topic.metadata.refresh.interval.ms": 200})
    reports: list[int | None] = []

    def produce() -> str:
        try:
            producer.produce(topic, b"x",
                             on_delivery=lambda err, msg: reports.append(None if err is None else err.code()))
        except KafkaException as exc:  # the client's cached view of the last answer for this topic
            return exc.args[0].name()
        left = producer.flush(3)
        if left or not reports:
            return "no report"
        code = reports[-1]
        return "delivered" if code is None else KafkaError(code).name()

    try:
        assert until(produce, "delivered", 15, time.monotonic())[0] == "delivered"
        stats = sidecar.stats()
        started = serve.edit(set_kafka_allow(["billing-*"]))
        got, took = until(produce, "TOPIC_AUTHORIZATION_FAILED", PROPAGATION_S + 1, started)
        assert (got, took < PROPAGATION_S) == ("TOPIC_AUTHORIZATION_FAILED", True), (got, took)
        serve.wait_log(r"snapshot 2 for node key")
        got, took = until(produce, "delivered", PROPAGATION_S + 1, serve.edit(set_kafka_allow(["orders-*"])))
        assert (got, took < PROPAGATION_S) == ("delivered", True), (got, took)
        serve.wait_log(r"snapshot 3 for node key")
        after = sidecar.stats()
        assert after["evmesh.kafka.k.connections_total"] == stats["evmesh.kafka.k.connections_total"], "reconnected"
        assert after["evmesh.kafka.k.denied"] >= stats.get("evmesh.kafka.k.denied", 0) + 1
        sidecar.assert_nothing_drained(stats)
    finally:
        producer.flush(5)


@pytest.mark.parametrize("live", [True, False], ids=["live-policy", "inline"])
def test_kafka_broker_added_gets_a_node_listener_and_serves(live, tmp_path, mesh):
    """inline (--policy-port 0): the broker map is in the listeners' filter JSON, so the join modifies
    (and drains) the kafka listeners; with live policy only a listener is added."""
    try:
        ensure_kafka_jars()
        cluster = start_kafka_cluster("grow", tmp_path / "kafka", nodes=1)
    except EvmeshError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        port, node1, node2 = free_port(), free_port(), free_port()
        data = {
            "version": 1, "admin": {"port": 0},
            "brokers": [{"name": "grow", "protocol": "kafka", "address": cluster.bootstrap}],  # nodes discovered
            "listeners": [{"name": "k", "protocol": "kafka", "port": port, "broker": "grow",
                           "kafka": {"node_ports": {1: node1, 2: node2}}}],
        }
        serve, sidecar = mesh(data, [port, node1], discovery_interval=0.5, live=live)
        if live:
            assert serve.policies()["policies"]["k"]["nodes"] == [{"id": 1, "port": node1}]
        assert not accepts_tcp(node2)
        stats = sidecar.stats()

        cluster.add_broker()  # node 2
        serve.wait_log(r"broker grow: nodes \[1\] -> \[1, 2\]", 30)
        serve.wait_log(r"snapshot 2 for node key evmesh: 3 listeners, 3 clusters", 30)
        assert wait_until(lambda: accepts_tcp(node2), 15), "no node listener for the new broker"
        if live:
            assert wait_until(lambda: serve.policies()["policies"]["k"]["nodes"] == [
                {"id": 1, "port": node1}, {"id": 2, "port": node2}], 15)
        assert wait_until(lambda: sidecar.stats()["listener_manager.listener_added"]
                          == stats["listener_manager.listener_added"] + 1, 15)
        modified = sidecar.stats()["listener_manager.listener_modified"] - stats["listener_manager.listener_modified"]
        assert modified == (0 if live else 2), modified  # inline: k and k-node-1 got the new broker map

        topic = f"grow-{os.getpid()}-{int(live)}"
        leaders = create_topic(cluster.bootstrap, topic, 6)
        on_new = [p for p, leader in leaders.items() if leader == 2]
        assert on_new, f"no partition led by the new broker: {leaders}"
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "acks": "all", "message.timeout.ms": 15000})
        reports: list[tuple[int, Any]] = []
        producer.produce(topic, b"to node 2", partition=on_new[0],
                         on_delivery=lambda err, msg: reports.append((msg.partition(), err)))
        assert producer.flush(20) == 0
        assert reports == [(on_new[0], None)]
        final = sidecar.stats()
        assert final.get("tcp.k-node-2.downstream_cx_total", 0) >= 1, "the record did not go through the node listener"
    finally:
        cluster.stop()
