"""`evmesh run` with an addressless kafka broker: embed it (start_tansu), discover its nodes with Metadata,
render a listener per node, wait for all of them. Here the embedded broker is a tiny Python process that
answers Metadata v4, and Envoy is replaced by a stand-in that records what it was asked to wait for (the
real-broker, real-Envoy test lives with the kafka fixtures)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from evmesh import EvmeshError
from evmesh.runtime import mesh as runtime_mesh
from evmesh.runtime.ports import free_port
from evmesh.runtime.process import ManagedProcess
from evmesh.spec import load_spec_data
from evmesh.spec.models import Address, KafkaNode
from evmesh.testing import MeshHandle

FAKE_BROKER = textwrap.dedent("""\
    import socket, struct, sys
    port, node_id = int(sys.argv[1]), int(sys.argv[2])
    srv = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = srv.accept()
        with conn:
            data = b""
            while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            if len(data) < 12:
                continue
            host = b"127.0.0.1"
            # Metadata v4: correlation id, throttle, 1 broker (id, host, port, rack null), cluster id null,
            # controller id, no topics
            body = (data[8:12] + struct.pack(">iii", 0, 1, node_id) + struct.pack(">h", len(host)) + host
                    + struct.pack(">ihh", port, -1, -1) + struct.pack(">ii", node_id, 0))
            conn.sendall(struct.pack(">i", len(body)) + body)
    """)


class FakeTansu(ManagedProcess):
    def __init__(self, name: str, work_dir: Path, node_id: int):
        self.port = free_port()
        script = Path(work_dir) / "fake_broker.py"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(FAKE_BROKER)
        super().__init__(name, [sys.executable, script, str(self.port), str(node_id)], Path(work_dir) / f"{name}.log")


class FakeEnvoy(ManagedProcess):
    def __init__(self, work_dir: Path, admin_port: int, listener_ports):
        self.admin_port = admin_port
        self.listener_ports = list(listener_ports)
        super().__init__("envoy", [sys.executable, "-c", "import time; time.sleep(60)"], Path(work_dir) / "envoy.log")


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    started: dict[str, object] = {}

    def start_tansu(name, work_dir, cancel=None):
        from evmesh.runtime.ports import accepts_tcp, wait_until

        proc = FakeTansu(name, work_dir, node_id=7)
        assert wait_until(lambda: accepts_tcp(proc.port), 10)
        started["tansu"] = proc
        return proc

    def start_envoy(config_path, admin_port, listener_ports, log_path, base_id=None, cancel=None):
        envoy = FakeEnvoy(Path(log_path).parent, admin_port, listener_ports)
        started["envoy"] = envoy
        started["config"] = yaml.safe_load(Path(config_path).read_text())
        return envoy

    monkeypatch.setitem(runtime_mesh.EMBEDDED_BROKERS, "kafka", start_tansu)
    monkeypatch.setattr(runtime_mesh, "start_envoy", start_envoy)
    return started


def test_embedded_kafka_nodes_are_discovered_rendered_and_awaited(fakes, tmp_path):
    port, node_port = free_port(), free_port()
    spec = load_spec_data({
        "version": 1, "admin": {"port": 0},
        "brokers": [{"name": "km", "protocol": "kafka"}],
        "listeners": [{"name": "orders", "protocol": "kafka", "port": port, "broker": "km",
                       "kafka": {"node_ports": {7: node_port}}}],
    }, native_check=False)
    mesh = runtime_mesh.start_mesh(spec, tmp_path / "work")
    try:
        tansu, envoy, config = fakes["tansu"], fakes["envoy"], fakes["config"]
        assert mesh.kafka_nodes == {"km": (KafkaNode(7, Address("127.0.0.1", tansu.port)),)}
        assert sorted(envoy.listener_ports) == sorted([port, node_port])
        static = config["static_resources"]
        assert [x["name"] for x in static["listeners"]] == ["orders", "orders-node-7"]
        assert [c["name"] for c in static["clusters"]] == ["km", "km-node-7"]
        value = static["listeners"][1]["filter_chains"][0]["filters"][0]["typed_config"]["filter_config"]["value"]
        assert value["nodes"] == [{"id": 7, "port": node_port}] and value["bootstrap_port"] == port
        lines = mesh.summary_lines()
        assert lines[0].startswith(f"embedded kafka broker km: 127.0.0.1:{tansu.port} (pid {tansu.pid}, log ")
        assert lines[2] == (f"kafka listener orders: bootstrap 127.0.0.1:{port} (nodes 7 on {node_port}) "
                            f"-> broker km (127.0.0.1:{tansu.port})")

        handle = MeshHandle(mesh)
        assert handle.listener_port("orders") == port
        assert handle.bootstrap("orders") == f"127.0.0.1:{port}"
        assert handle.node_port("orders", 7) == node_port
        with pytest.raises(KeyError):
            handle.node_port("orders", 1)
    finally:
        mesh.stop()
    assert not tansu.alive() and not envoy.alive()


def test_a_busy_node_port_is_refused_and_the_broker_stopped(fakes, tmp_path):
    import socket

    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        node_port = busy.getsockname()[1]
        spec = load_spec_data({
            "version": 1, "admin": {"port": 0},
            "brokers": [{"name": "km", "protocol": "kafka"}],
            "listeners": [{"name": "orders", "protocol": "kafka", "port": port, "broker": "km",
                           "kafka": {"node_ports": {7: node_port}}}],
        }, native_check=False)
        with pytest.raises(EvmeshError) as exc:
            runtime_mesh.start_mesh(spec, tmp_path / "work")
    assert str(exc.value) == f"port already in use: listener orders-node-7: 127.0.0.1:{node_port}"
    assert not fakes["tansu"].alive() and "envoy" not in fakes


def test_kafka_starter_is_start_tansu_imported_lazily(monkeypatch, tmp_path):
    from evmesh.runtime import kafka as runtime_kafka

    calls = []
    monkeypatch.setattr(runtime_kafka, "start_tansu", lambda name, work_dir, cancel=None: calls.append(
        (name, work_dir, cancel)) or "proc")
    assert runtime_mesh.EMBEDDED_BROKERS["kafka"]("km", tmp_path, cancel=None) == "proc"
    assert calls == [("km", tmp_path, None)]
