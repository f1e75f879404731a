"""Live policy on the control-plane side (`evmesh xds serve --policy-port`): the long-poll endpoint spoken to
with http.client and a raw socket, listeners that carry a policy reference instead of the policy keys, spec
edits that change only the policy, bad edits that publish nothing; and Kafka node discovery against a tiny
in-test Metadata v4 responder whose broker list the tests change."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from evmesh.render.policy import POLICY_KEYS, policy_documents, split_policy
from evmesh.spec import NatsOptions, load_spec_data
from evmesh.spec.models import Address, KafkaNode
from evmesh.xds import CLUSTER_TYPE, LISTENER_TYPE, SnapshotCache, resource_to_rendered, snapshot_from_spec
from evmesh.xds.policy import PolicyServer, PolicySet, PolicyStore
from evmesh.xds.serve import KafkaDiscovery, SpecPublisher, serve_spec

NATS_BROKER = {"name": "nats-main", "protocol": "nats", "address": "127.0.0.1:4222"}


def nats_spec(allow: list[str], max_payload: int = 1024, port: int = 24222) -> dict[str, Any]:
    return {
        "version": 1, "admin": {"port": 0}, "brokers": [NATS_BROKER],
        "listeners": [{"name": "orders", "protocol": "nats", "port": port, "broker": "nats-main",
                       "nats": {"max_payload": max_payload, "max_control_line": 2048,
                                "acl": {"publish": {"allow": allow}},
                                "subjects": [{"name": "orders", "pattern": "orders.>"}]}}],
    }


def filter_config(rendered_listener: dict[str, Any]) -> dict[str, Any]:
    return rendered_listener["filter_chains"][0]["filters"][0]["typed_config"]["filter_config"]["value"]


# ---- the policy split and the resources ------------------------------------------------------------------


def test_listeners_carry_a_reference_and_no_policy_keys():
    spec = load_spec_data(nats_spec(["orders.>"]), native_check=False)
    snap = snapshot_from_spec(spec, "1", policy_source="127.0.0.1:18001")
    (lst,) = snap.get(LISTENER_TYPE).values()
    assert filter_config(resource_to_rendered(lst)) == {
        "stat_prefix": "orders", "max_control_line": 2048,
        "subjects": [{"name": "orders", "pattern": "orders.>"}],
        "policy": {"name": "orders", "source": "127.0.0.1:18001"},
    }
    assert policy_documents(spec, {}) == {"orders": {"acl": {"publish": {"allow": ["orders.>"]}}, "max_payload": 1024}}
    # the static render is unchanged: policies inline, no reference
    static = snapshot_from_spec(spec, "1")
    assert "policy" not in filter_config(resource_to_rendered(static.get(LISTENER_TYPE)["orders"]))
    assert filter_config(resource_to_rendered(static.get(LISTENER_TYPE)["orders"]))["max_payload"] == 1024


def test_split_policy_keys_per_protocol():
    kafka = {"stat_prefix": "k", "bootstrap_port": 1, "advertised_host": "h", "nodes": [], "max_frame": 2048,
             "acl": {}, "topics": [], "durability": [], "max_batch_bytes": 5, "quotas": [], "verify_crc": True}
    structural, policy = split_policy("kafka", kafka)
    assert sorted(policy) == sorted(POLICY_KEYS["kafka"])
    assert sorted(structural) == ["advertised_host", "bootstrap_port", "max_frame", "stat_prefix", "topics", "verify_crc"]
    amqp = {"stat_prefix": "a", "max_frame": 4096, "max_body_size": 9, "acl": {}, "exchanges": [], "queues": [],
            "throttle": []}
    structural, policy = split_policy("amqp", amqp)
    assert sorted(policy) == ["acl", "max_body_size", "throttle"]
    assert sorted(structural) == ["exchanges", "max_frame", "queues", "stat_prefix"]


def test_kafka_node_listeners_share_the_reference_and_nodes_go_to_the_policy():
    data = {
        "version": 1, "admin": {"port": 0},
        "brokers": [{"name": "km", "protocol": "kafka", "address": "127.0.0.1:9092",
                     "nodes": [{"id": 1, "address": "127.0.0.1:9092"}, {"id": 2, "address": "127.0.0.1:9093"}]}],
        "listeners": [{"name": "k", "protocol": "kafka", "port": 29092, "broker": "km",
                       "kafka": {"acl": {"produce": {"allow": ["orders"]}}}}],
    }
    spec = load_spec_data(data, native_check=False)
    snap = snapshot_from_spec(spec, "1", policy_source="127.0.0.1:7")
    assert sorted(snap.get(LISTENER_TYPE)) == ["k", "k-node-1", "k-node-2"]
    configs = {filter_config(resource_to_rendered(r))["policy"]["name"] for r in snap.get(LISTENER_TYPE).values()}
    assert configs == {"k"}
    assert all("nodes" not in filter_config(resource_to_rendered(r)) for r in snap.get(LISTENER_TYPE).values())
    nodes = {"km": spec.brokers[0].nodes}
    assert policy_documents(spec, nodes)["k"] == {
        "acl": {"produce": {"allow": ["orders"]}}, "nodes": [{"id": 1, "port": 29094}, {"id": 2, "port": 29095}]}


def test_policy_only_edit_changes_no_listener_resource():
    a = load_spec_data(nats_spec(["orders.>"]), native_check=False)
    b = load_spec_data(nats_spec(["billing.>"], max_payload=2048), native_check=False)
    sa = snapshot_from_spec(a, "1", policy_source="127.0.0.1:7")
    sb = snapshot_from_spec(b, "2", policy_source="127.0.0.1:7")
    assert sa.versions == sb.versions
    assert PolicySet.of(policy_documents(a, {})).version != PolicySet.of(policy_documents(b, {})).version
    # without live policy the same edit is a listener change (it would drain)
    assert snapshot_from_spec(a, "1").version(LISTENER_TYPE) != snapshot_from_spec(b, "2").version(LISTENER_TYPE)


def test_bad_policy_is_reported_with_its_path_and_nothing_is_published():
    cache, store, lines = SnapshotCache(), PolicyStore(), []
    pub = SpecPublisher(cache, "evmesh", lines.append, store, "127.0.0.1:7", native_check=True)
    spec = load_spec_data(nats_spec(["orders.>"]))
    assert pub.publish(spec) is not None
    first_policy, first_snap = store.current, cache.get_snapshot("evmesh")
    # bypass the loader on purpose: the publisher's own check (the module's parser on the merged JSON) refuses it
    bad = replace(spec, listeners=(replace(spec.listeners[0], nats=NatsOptions(max_payload=0)),))
    assert pub.publish(bad) is None
    assert lines[-1] == "<spec>: listeners[0].nats.max_payload: must be between 1 and 67108864, got 0; not pushed"
    assert store.current is first_policy and cache.get_snapshot("evmesh") is first_snap


def test_a_joining_kafka_node_enters_the_policy_after_the_ack():
    data = {
        "version": 1, "admin": {"port": 0},
        "brokers": [{"name": "km", "protocol": "kafka", "address": "127.0.0.1:9092"}],
        "listeners": [{"name": "k", "protocol": "kafka", "port": 29092, "broker": "km"}],
    }
    spec = load_spec_data(data, native_check=False)
    store, lines = PolicyStore(), []
    pub = SpecPublisher(SnapshotCache(), "evmesh", lines.append, store, "127.0.0.1:7", has_streams=lambda: True)
    one = {"km": (KafkaNode(1, Address("127.0.0.1", 9092)),)}
    two = {"km": (*one["km"], KafkaNode(2, Address("127.0.0.1", 9093)))}
    pub.publish(spec, one)
    assert store.current.policies["k"]["nodes"] == [{"id": 1, "port": 29094}] and pub.pending_policy is None
    pub.publish(spec, two)  # node 2 joins: its listener first, the nodes map after Envoy's ACK
    assert store.current.policies["k"]["nodes"] == [{"id": 1, "port": 29094}]
    assert pub.pending_policy.policies["k"]["nodes"] == [{"id": 1, "port": 29094}, {"id": 2, "port": 29095}]
    asked: list[str] = []

    def synced(label: str) -> bool:  # Envoy ACKs snapshot 2 at the third look
        asked.append(label)
        return len(asked) == 3

    asyncio.run(pub.settle(synced, 5))
    assert asked == ["2", "2", "2"]
    assert store.current.policies["k"]["nodes"] == [{"id": 1, "port": 29094}, {"id": 2, "port": 29095}]
    pub.publish(spec, one)  # node 2 leaves: dropped from the map at once
    assert store.current.policies["k"]["nodes"] == [{"id": 1, "port": 29094}] and pub.pending_policy is None


# ---- the HTTP endpoint --------------------------------------------------------------------------------------


class LoopThread:
    """An asyncio loop on a thread, running a PolicyServer over a PolicyStore."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = PolicyStore()
        self.server = PolicyServer(self.store)
        self.port = self.run(self.server.start(0))

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def policy_server() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


def get(port: int, query: str = "", timeout: float = 70) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/v1/policies" + (f"?{query}" if query else ""))
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def test_answers_at_once_with_length_and_close(policy_server):
    docs = {"orders": {"acl": {"publish": {"allow": ["orders.>"]}}}}
    ps = policy_server.store.set(docs)
    for query in ("", "version=", "version=old&wait=30"):
        started = time.monotonic()
        resp, body = get(policy_server.port, query)
        assert time.monotonic() - started < 0.5
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
        assert resp.getheader("Connection") == "close" and int(resp.getheader("Content-Length")) == len(body)
        assert resp.getheader("Transfer-Encoding") is None
        assert json.loads(body) == {"version": ps.version, "policies": docs}
    # a raw socket: the server closes after one answer
    with socket.create_connection(("127.0.0.1", policy_server.port), timeout=5) as s:
        s.sendall(b"GET /v1/policies HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and json.loads(body)["version"] == ps.version
    resp, _ = get(policy_server.port, "wait=x")
    assert resp.status == 400
    conn = http.client.HTTPConnection("127.0.0.1", policy_server.port, timeout=5)
    conn.request("GET", "/v2/other")
    assert conn.getresponse().status == 404
    conn.close()


def test_long_poll_wakes_within_100ms_and_times_out(policy_server):
    v1 = policy_server.store.set({"a": {"max_payload": 1}}).version
    box: dict[str, Any] = {}

    def poll() -> None:
        resp, body = get(policy_server.port, f"version={v1}&wait=30")
        box["at"] = time.monotonic()
        box["doc"] = json.loads(body)

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.3)
    assert "doc" not in box, "answered although the version did not change"
    changed_at = time.monotonic()
    v2 = policy_server.store.set({"a": {"max_payload": 2}}).version
    t.join(5)
    assert box["doc"] == {"version": v2, "policies": {"a": {"max_payload": 2}}}
    assert box["at"] - changed_at < 0.1
    # nothing changes: held for `wait` seconds, then the unchanged document
    started = time.monotonic()
    resp, body = get(policy_server.port, f"version={v2}&wait=0.4")
    assert 0.4 <= time.monotonic() - started < 1.5 and json.loads(body)["version"] == v2


def test_ack_and_nack_are_logged_once_and_a_nack_is_not_answered_again(policy_server, caplog):
    caplog.set_level(logging.INFO, "evmesh.xds")
    v = policy_server.store.set({"orders": {"max_payload": 0}}).version
    for _ in range(2):
        get(policy_server.port, f"version={v}&wait=0&applied={v}")
    err = "max_payload: must be between 1 and 67108864, got 0"
    started = time.monotonic()
    for _ in range(2):
        resp, body = get(policy_server.port, f"version={v}&wait=0.3&rejected=orders&error={err.replace(' ', '%20')}")
        assert json.loads(body)["version"] == v
    assert time.monotonic() - started >= 0.6, "a NACKed version must not be answered at once (no resend loop)"
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "evmesh.xds" and "policy" in r.getMessage()]
    assert messages == [("INFO", f"policy ACK version {v}"), ("WARNING", f"policy NACK version {v} for orders: {err}")]
    kinds = [(e.kind, e.listener) for e in policy_server.server.events if e.kind != "served"]
    assert kinds == [("ack", ""), ("nack", "orders")]


# ---- `serve_spec` end to end (no Envoy): spec edits and discovery -------------------------------------------


class Serving:
    """serve_spec on its own thread with a policy server on a free port; lines echoed are kept."""

    def __init__(self, spec_path: Path, **kw: Any) -> None:
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.policy: PolicyServer | None = None
        self.ads_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(port: int) -> None:
                self.ads_port = port
                self._ready.set()

            await serve_spec(spec_path, port=0, echo=self.lines.append, stop=self._stop, poll_interval=0.05,
                             native_check=False, on_ready=ready, policy_port=0,
                             on_policy_ready=lambda s: setattr(self, "policy", s), **kw)

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # reported by the test
                self.error = exc
                self._ready.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self._ready.wait(15), self.lines
        if self.error:
            raise self.error

    def doc(self) -> dict[str, Any]:
        return json.loads(get(self.policy.port)[1])

    def wait_line(self, needle: str, timeout: float = 5) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if needle in line:
                    return line
            time.sleep(0.01)
        raise AssertionError(f"{needle!r} not echoed: {self.lines}")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)


@pytest.fixture
def captured_cache(monkeypatch) -> dict[str, SnapshotCache]:
    """The SnapshotCache serve_spec creates, for assertions on its snapshots."""
    import evmesh.xds.serve as serve_mod

    box: dict[str, SnapshotCache] = {}

    def keep(*args: Any, **kw: Any) -> SnapshotCache:
        box["cache"] = SnapshotCache(*args, **kw)
        return box["cache"]

    monkeypatch.setattr(serve_mod, "SnapshotCache", keep)
    return box


def write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)


def test_serve_spec_edit_wakes_the_long_poll_and_a_bad_edit_publishes_nothing(tmp_path, captured_cache):
    path = tmp_path / "mesh.yaml"
    write(path, nats_spec(["orders.>"]))
    serving = Serving(path)
    cache = captured_cache["cache"]
    try:
        snap1 = cache.get_snapshot("evmesh")
        first = serving.doc()
        assert first["policies"]["orders"]["acl"] == {"publish": {"allow": ["orders.>"]}}
        assert f"policy server on 127.0.0.1:{serving.policy.port}" in "\n".join(serving.lines)
        box: dict[str, Any] = {}

        def poll() -> None:
            box["doc"] = json.loads(get(serving.policy.port, f"version={first['version']}&wait=30")[1])
            box["at"] = time.monotonic()

        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.2)
        write(path, nats_spec(["billing.>"]))
        edited = time.monotonic()
        t.join(5)
        assert box["doc"]["policies"]["orders"]["acl"] == {"publish": {"allow": ["billing.>"]}}
        assert box["at"] - edited < 0.5  # one spec poll (0.05 s) plus the push
        line = serving.wait_line("snapshot 2 ")
        assert line.endswith(f"policy {box['doc']['version']}")
        # the policy-only edit left every Listener resource as it was: nothing for Envoy to drain
        snap2 = cache.get_snapshot("evmesh")
        assert snap2.label == "2" and snap2.versions == snap1.versions
        bad = nats_spec(["billing..x"])
        write(path, bad)
        serving.wait_line("invalid subject pattern")
        serving.wait_line("not pushed; still serving snapshot 2")
        time.sleep(0.2)
        assert serving.doc() == box["doc"] and cache.get_snapshot("evmesh") is snap2
    finally:
        serving.stop()


def test_cli_policy_port_defaults_to_ads_port_plus_one(tmp_path):
    from evmesh.runtime.ports import free_port

    def free_pair() -> int:
        """A free port whose successor is free too."""
        for _ in range(100):
            port = free_port()
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 1))
                    return port
                except OSError:
                    continue
        raise AssertionError("no two free consecutive ports")

    path = tmp_path / "mesh.yaml"
    write(path, nats_spec(["orders.>"]))
    port = free_pair()
    evmesh = Path(sys.prefix) / "bin" / "evmesh"
    proc = subprocess.Popen([evmesh, "xds", "serve", path, "--port", str(port), "--no-native-check"],
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("policy server on" in x for x in lines):
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
        assert f"policy server on 127.0.0.1:{port + 1} (GET /v1/policies)\n" in lines, lines
        resp, body = get(port + 1)
        assert resp.status == 200 and "orders" in json.loads(body)["policies"]
    finally:
        proc.terminate()
        proc.wait(10)


# ---- Kafka node discovery -------------------------------------------------------------------------------------


def _string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(s.encode())) + s.encode()


class FakeKafka:
    """Answers every Metadata v4 request with `brokers` [(id, host, port)]; down=True refuses to answer."""

    def __init__(self, brokers: list[tuple[int, str, int]]):
        self.brokers = list(brokers)
        self.down = False
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                if self.down:
                    # Read the request, then close without an answer: always "closed before a complete
                    # response" (closing at once raced the client's send into a reset now and then).
                    conn.settimeout(2)
                    try:
                        conn.recv(4096)
                    except OSError:
                        pass
                    continue
                conn.settimeout(2)
                data = b""
                try:
                    while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    correlation = struct.unpack_from(">i", data, 8)[0]
                    body = struct.pack(">iii", correlation, 0, len(self.brokers))
                    for node_id, host, port in self.brokers:
                        body += struct.pack(">i", node_id) + _string(host) + struct.pack(">i", port) + _string(None)
                    body += _string("c1") + struct.pack(">i", self.brokers[0][0]) + struct.pack(">i", 0)
                    conn.sendall(struct.pack(">i", len(body)) + body)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def fake_kafka() -> Iterator[FakeKafka]:
    fk = FakeKafka([(1, "127.0.0.1", 39001)])
    try:
        yield fk
    finally:
        fk.close()


def kafka_spec(fake: FakeKafka, port: int = 29092) -> dict[str, Any]:
    return {
        "version": 1, "admin": {"port": 0},
        "brokers": [{"name": "km", "protocol": "kafka", "address": f"127.0.0.1:{fake.port}"}],
        "listeners": [{"name": "k", "protocol": "kafka", "port": port, "broker": "km",
                       "kafka": {"acl": {"produce": {"allow": ["orders"]}}}}],
    }


def test_discovery_round_keeps_the_last_nodes_on_failure(fake_kafka):
    lines: list[str] = []
    spec = load_spec_data(kafka_spec(fake_kafka), native_check=False)
    d = KafkaDiscovery(lines.append, timeout=1)
    assert d.untried(spec) and d.round(spec)
    assert d.nodes_for(spec) == {"km": (KafkaNode(1, Address("127.0.0.1", 39001)),)}
    assert not d.round(spec)  # same nodes: no change
    fake_kafka.down = True
    assert not d.round(spec) and not d.round(spec) and d.failed()
    assert d.nodes_for(spec) == {"km": (KafkaNode(1, Address("127.0.0.1", 39001)),)}
    assert len(lines) == 1 and lines[0].startswith("<spec>: brokers[0].nodes: cannot discover the nodes of broker km")
    assert lines[0].endswith("; keeping nodes 1")
    fake_kafka.down = False
    fake_kafka.brokers.append((2, "127.0.0.1", 39002))
    assert d.round(spec) and not d.failed()
    assert lines[1:] == ["broker km: discovery works again", "broker km: nodes [1] -> [1, 2]"]


def test_serve_pushes_joining_and_leaving_nodes_without_touching_the_kafka_listener(tmp_path, fake_kafka,
                                                                                   captured_cache):
    path = tmp_path / "mesh.yaml"
    write(path, kafka_spec(fake_kafka))
    serving = Serving(path, discovery_interval=0.1)
    cache = captured_cache["cache"]
    try:
        snap1 = cache.get_snapshot("evmesh")
        assert sorted(snap1.get(LISTENER_TYPE)) == ["k", "k-node-1"]
        assert sorted(snap1.get(CLUSTER_TYPE)) == ["km", "km-node-1"]
        assert serving.doc()["policies"]["k"]["nodes"] == [{"id": 1, "port": 29094}]

        fake_kafka.brokers.append((2, "127.0.0.1", 39002))  # a broker joins
        serving.wait_line("snapshot 2 ")
        snap2 = cache.get_snapshot("evmesh")
        assert sorted(snap2.get(LISTENER_TYPE)) == ["k", "k-node-1", "k-node-2"]
        assert sorted(snap2.get(CLUSTER_TYPE)) == ["km", "km-node-1", "km-node-2"]
        assert snap2.get(LISTENER_TYPE)["k"].version == snap1.get(LISTENER_TYPE)["k"].version
        assert snap2.get(LISTENER_TYPE)["k-node-1"].version == snap1.get(LISTENER_TYPE)["k-node-1"].version
        assert serving.doc()["policies"]["k"]["nodes"] == [{"id": 1, "port": 29094}, {"id": 2, "port": 29095}]

        fake_kafka.down = True  # a failed round: logged, nodes kept, nothing pushed
        serving.wait_line("cannot discover the nodes of broker km")
        time.sleep(0.3)
        assert cache.get_snapshot("evmesh") is snap2

        fake_kafka.brokers = [(2, "127.0.0.1", 39002)]  # node 1 leaves
        fake_kafka.down = False
        serving.wait_line("snapshot 3 ")
        snap3 = cache.get_snapshot("evmesh")
        assert sorted(snap3.get(LISTENER_TYPE)) == ["k", "k-node-2"]
        assert sorted(snap3.get(CLUSTER_TYPE)) == ["km", "km-node-2"]
        assert snap3.get(LISTENER_TYPE)["k"].version == snap1.get(LISTENER_TYPE)["k"].version
        assert serving.doc()["policies"]["k"]["nodes"] == [{"id": 2, "port": 29095}]
    finally:
        serving.stop()


def test_spec_nodes_win_over_discovery(tmp_path, fake_kafka):
    data = kafka_spec(fake_kafka)
    data["brokers"][0]["nodes"] = [{"id": 7, "address": "127.0.0.1:39007"}]
    spec = load_spec_data(data, native_check=False)
    d = KafkaDiscovery(lambda line: None)
    assert d.targets(spec) == [] and not d.round(spec)
    fake_kafka.down = True
    path = tmp_path / "mesh.yaml"
    write(path, data)
    serving = Serving(path, discovery_interval=0.1)
    try:
        assert serving.doc()["policies"]["k"]["nodes"] == [{"id": 7, "port": 29100}]
        time.sleep(0.3)
        assert not any("discover" in line for line in serving.lines), serving.lines
    finally:
        serving.stop()
