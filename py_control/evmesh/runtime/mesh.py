"""A running mesh: embedded brokers for addressless brokers, then Envoy on the rendered bootstrap.

Order matters: brokers start first (Envoy's clusters point at them) and stop last.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EvmeshError, ProcessError
from ..render import broker_addresses, render_yaml
from ..render.bootstrap import check_kafka_node_ports, kafka_broker_nodes, listener_ports
from ..spec.kafka_nodes import node_listener_name
from ..spec.models import Address, KafkaNode, Spec
from .embedded_amqp import start_embedded_rabbitmq
from .envoy import Envoy, start_envoy
from .nats import start_nats_server
from .ports import Cancelled, free_port, port_is_free
from .process import ManagedProcess


def _start_tansu(name: str, work_dir: Path, cancel: threading.Event | None = None) -> ManagedProcess:
    from .kafka import start_tansu  # imported only when a kafka broker is embedded

    return start_tansu(name, work_dir, cancel=cancel)


# protocol -> starter(name, work_dir, cancel=...) of an embedded broker (ManagedProcess-shaped, with .port)
EMBEDDED_BROKERS: dict[str, Callable[..., ManagedProcess]] = {
    "nats": start_nats_server,
    "amqp": start_embedded_rabbitmq,
    "kafka": _start_tansu,
}
POLL_INTERVAL_S = 0.2


class ChildDied(ProcessError):
    """A child exited while the mesh was serving."""


@dataclass
class RunningMesh:
    spec: Spec
    work_dir: Path
    config_path: Path
    admin_port: int
    addresses: dict[str, Address]
    envoy: Envoy
    brokers: dict[str, ManagedProcess] = field(default_factory=dict)
    kafka_nodes: dict[str, tuple[KafkaNode, ...]] = field(default_factory=dict)  # kafka broker -> its nodes

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def processes(self) -> list[ManagedProcess]:
        """Envoy first, then the brokers: the order to stop them in."""
        return [self.envoy, *(self.brokers[name] for name in sorted(self.brokers))]

    def dead_child(self) -> ManagedProcess | None:
        return next((p for p in self.processes() if not p.alive()), None)

    def stop(self) -> None:
        _stop_all(self.processes())

    def summary_lines(self) -> list[str]:
        lines = [
            f"embedded {self.spec.broker(name).protocol} broker {name}: {self.addresses[name]} (pid {p.pid}, log {p.log_path})"
            for name, p in sorted(self.brokers.items())
        ]
        lines.append(f"envoy: pid {self.envoy.pid}, config {self.config_path}, log {self.envoy.log_path}")
        for lst in sorted(self.spec.listeners, key=lambda x: x.name):
            host = f"[{lst.bind}]" if ":" in lst.bind else lst.bind
            if lst.protocol == "kafka":
                nodes = ", ".join(f"{n.id} on {lst.node_port(n.id)}" for n in self.kafka_nodes.get(lst.broker, ()))
                where = f"bootstrap {host}:{lst.port} (nodes {nodes})"
            else:
                where = f"{lst.protocol}://{host}:{lst.port}"
            lines.append(f"{lst.protocol} listener {lst.name}: {where} -> broker {lst.broker} ({self.addresses[lst.broker]})")
        lines.append(f"metrics: {self.admin_url}/stats?filter=evmesh")
        return lines


def _stop_all(processes: list[ManagedProcess]) -> None:
    for p in processes:
        p.stop()


def _check_ports_free(spec: Spec, admin_port: int | None, nodes: dict[str, tuple[KafkaNode, ...]],
                      only: set[str] | None = None) -> None:
    """Envoy binds listeners with port reuse: a clash would be silent, so refuse it up front.
    only: check just these Envoy listeners (and not the admin port)."""
    busy = [f"listener {name}: {bind}:{port}" for name, bind, port in listener_ports(spec, nodes)
            if (only is None or name in only) and not port_is_free(port, bind)]
    if only is None and spec.admin.port and not port_is_free(admin_port):
        busy.append(f"admin: 127.0.0.1:{admin_port}")
    if busy:
        raise EvmeshError("port already in use: " + "; ".join(busy))


def _embedded_kafka_nodes(name: str, proc: ManagedProcess, address: Address) -> tuple[KafkaNode, ...]:
    """The nodes an embedded kafka broker reports (one Metadata request)."""
    from ..kafka.discovery import discover_nodes

    try:
        found = discover_nodes(address)
    except EvmeshError as exc:
        raise proc.failure(f"embedded kafka broker {name}: cannot discover its nodes: {exc}") from None
    return tuple(KafkaNode(node_id, Address(host, port)) for node_id, host, port in found)


def start_mesh(
    spec: Spec,
    work_dir: Path | None = None,
    base_id: int | None = None,
    cancel: threading.Event | None = None,
) -> RunningMesh:
    """Start embedded brokers and Envoy for `spec`; everything is ready on return.
    On any failure, stops whatever it started and re-raises."""
    work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="evmesh-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    admin_port = spec.admin.port or free_port()
    # kafka brokers with an address: the nodes the spec lists or the broker reports, before starting anything
    nodes = {name: ns for name, ns in kafka_broker_nodes(spec).items() if not spec.broker(name).embedded}
    check_kafka_node_ports(spec, nodes, admin_port)
    _check_ports_free(spec, admin_port, nodes)
    embedded_kafka = {b.name for b in spec.brokers if b.embedded and b.protocol == "kafka"}
    started: list[ManagedProcess] = []
    try:
        brokers: dict[str, ManagedProcess] = {}
        embedded: dict[str, Address] = {}
        for b in sorted((b for b in spec.brokers if b.embedded), key=lambda b: b.name):
            proc = EMBEDDED_BROKERS[b.protocol](b.name, work_dir, cancel=cancel)
            started.append(proc)
            brokers[b.name] = proc
            embedded[b.name] = Address("127.0.0.1", proc.port)
            if b.name in embedded_kafka:
                nodes[b.name] = _embedded_kafka_nodes(b.name, proc, embedded[b.name])
        if embedded_kafka:  # their node listeners are known only now
            check_kafka_node_ports(spec, nodes, admin_port)
            _check_ports_free(spec, admin_port, nodes, only={
                node_listener_name(x.name, n.id) for x in spec.listeners if x.broker in embedded_kafka
                for n in nodes[x.broker]})
        config_path = work_dir / "envoy.yaml"
        config_path.write_text(render_yaml(spec, embedded, admin_port=admin_port, kafka_nodes=nodes))
        envoy = start_envoy(
            config_path, admin_port, [port for _, _, port in listener_ports(spec, nodes)], work_dir / "envoy.log",
            base_id=base_id, cancel=cancel,
        )
        started.insert(0, envoy)
    except BaseException:
        _stop_all(list(reversed(started)))
        raise
    return RunningMesh(spec, work_dir, config_path, admin_port, broker_addresses(spec, embedded), envoy, brokers,
                       kafka_nodes=nodes)


def run_mesh(spec: Spec, work_dir: Path | None, echo: Callable[[str], None]) -> int:
    """`evmesh run`: start the mesh, print where to connect, serve until SIGINT/SIGTERM.

    Returns 0 after a requested stop. Raises ChildDied (after stopping the rest) if a child exits.
    """
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    mesh: RunningMesh | None = None
    try:
        try:
            mesh = start_mesh(spec, work_dir, cancel=stop)
        except Cancelled:
            return 0
        for line in mesh.summary_lines():
            echo(line)
        while not stop.wait(POLL_INTERVAL_S):
            dead = mesh.dead_child()
            if dead is not None:
                raise ChildDied(
                    f"{dead.name} (pid {dead.pid}) exited unexpectedly with code {dead.returncode}; log: {dead.log_path}",
                    dead.log_tail(),
                )
        return 0
    finally:
        if mesh is not None:
            mesh.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
