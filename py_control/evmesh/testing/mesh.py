"""A running mesh for tests: start from a spec dict or file, read stats, stop by PID."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..runtime.mesh import RunningMesh, start_mesh
from ..spec import Spec, load_spec, load_spec_data


class MeshHandle:
    """Envoy (plus any embedded brokers) started for one spec."""

    def __init__(self, mesh: RunningMesh):
        self.mesh = mesh
        self.envoy = mesh.envoy
        self.brokers = mesh.brokers

    @property
    def spec(self) -> Spec:
        return self.mesh.spec

    @property
    def admin_url(self) -> str:
        return self.mesh.admin_url

    def listener_port(self, name: str) -> int:
        for lst in self.spec.listeners:
            if lst.name == name:
                return lst.port
        raise KeyError(f"no listener {name!r} in the spec")

    def node_port(self, listener: str, node_id: int) -> int:
        """The port of kafka listener `listener`'s node listener for broker node `node_id`."""
        lst = self._kafka_listener(listener)
        ids = [n.id for n in self.mesh.kafka_nodes.get(lst.broker, ())]
        if node_id not in ids:
            raise KeyError(f"broker {lst.broker} of listener {listener!r} has no node {node_id} (nodes: {ids})")
        return lst.node_port(node_id)

    def bootstrap(self, listener: str) -> str:
        """The bootstrap server of kafka listener `listener`, as "127.0.0.1:PORT"."""
        return f"127.0.0.1:{self._kafka_listener(listener).port}"

    def _kafka_listener(self, name: str):
        lst = next((x for x in self.spec.listeners if x.name == name), None)
        if lst is None:
            raise KeyError(f"no listener {name!r} in the spec")
        if lst.protocol != "kafka":
            raise KeyError(f"listener {name!r} speaks {lst.protocol}, not kafka")
        return lst

    def listener_url(self, name: str) -> str:
        lst = next(x for x in self.spec.listeners if x.name == name)
        return f"{lst.protocol}://127.0.0.1:{lst.port}"

    def stats(self) -> dict[str, int]:
        """Envoy counters and gauges by name (e.g. "evmesh.nats.orders.c2s.frames")."""
        return self.envoy.stats()

    def log_text(self) -> str:
        return self.envoy.log_text()

    def pids(self) -> list[int]:
        """Every process started for this mesh (an embedded RabbitMQ counts its Erlang VM and epmd too)."""
        out: list[int] = []
        for p in self.mesh.processes():
            out.extend(p.all_pids() if hasattr(p, "all_pids") else [p.pid])
        return out

    def stop(self) -> None:
        self.mesh.stop()


def start_mesh_for_spec(spec: Mapping[str, Any] | str | Path | Spec, work_dir: Path) -> MeshHandle:
    """Validate (with the native check), render and start; ready on return."""
    if isinstance(spec, Spec):
        model = spec
    elif isinstance(spec, Mapping):
        model = load_spec_data(dict(spec))
    else:
        model = load_spec(spec)
    return MeshHandle(start_mesh(model, work_dir))
