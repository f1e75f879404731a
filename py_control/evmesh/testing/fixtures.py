"""pytest fixtures: free_port, nats_server, rabbitmq_server, envoy_for_spec. Everything is stopped by PID at
teardown."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..errors import NativeLibraryMissing
from ..runtime.nats import NatsServer, start_nats_server
from ..runtime.ports import free_port as _free_port
from ..runtime.rabbitmq import RabbitMQ, rabbitmq_available, start_rabbitmq
from .mesh import MeshHandle, start_mesh_for_spec


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a free TCP port on 127.0.0.1."""
    return _free_port


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A started nats-server with JetStream (.port, .url, .pid); stopped with SIGINT at teardown."""
    server = start_nats_server("nats", tmp_path / "nats-server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rabbitmq_server(tmp_path: Path) -> Iterator[RabbitMQ]:
    """A started RabbitMQ on free ports (.port, .url, .address); stopped with `rabbitmqctl stop` at teardown.
    Skips the test when Debian's rabbitmq-server is not installed."""
    if not rabbitmq_available():
        pytest.skip("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
    server = start_rabbitmq("rabbitmq", tmp_path / "rabbitmq-server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def envoy_for_spec(tmp_path: Path) -> Iterator[Callable[[Any], MeshHandle]]:
    """Factory: envoy_for_spec(spec dict | path) -> MeshHandle (.admin_url, .listener_port(name),
    .stats(), .stop(), .log_text(), .pids(); for kafka listeners .bootstrap(name) and .node_port(name, node_id)).
    Brokers without an address get an embedded broker: nats-server for `nats`, RabbitMQ for `amqp`, Tansu for
    `kafka`.
    A missing build/modules/*.so fails the test with the reason."""
    handles: list[MeshHandle] = []
    counter = itertools.count()

    def start(spec: Any) -> MeshHandle:
        try:
            handle = start_mesh_for_spec(spec, tmp_path / f"mesh-{next(counter)}")
        except NativeLibraryMissing as exc:
            pytest.fail(str(exc), pytrace=False)
        handles.append(handle)
        return handle

    try:
        yield start
    finally:
        for handle in reversed(handles):
            handle.stop()
