"""Real processes shared by the tests of one integration module: one nats-server, and Envoy (with the
evmesh module) in front of it. Both are started once per test module and stopped by PID afterwards.

Tests in a module run one after the other, so each asserts on /stats deltas and uses its own subjects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pytest

from evmesh.runtime.nats import NatsServer, start_nats_server
from evmesh.runtime.ports import free_port
from evmesh.testing import MeshHandle, start_mesh_for_spec

BROKER = "nats-main"


def sidecar_spec(broker_address: str, listeners: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A mesh spec with one broker at `broker_address` and one listener per entry (name -> nats options)."""
    return {
        "version": 1,
        "admin": {"port": 0},
        "brokers": [{"name": BROKER, "protocol": "nats", "address": broker_address}],
        "listeners": [
            {"name": name, "protocol": "nats", "port": free_port(), "broker": BROKER, "nats": dict(options)}
            for name, options in listeners.items()
        ],
    }


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """The real nats-server (JetStream on) behind the sidecar; tests also connect to it directly."""
    server = start_nats_server("nats", tmp_path_factory.mktemp("broker"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def start_sidecar(tmp_path_factory: pytest.TempPathFactory, broker: NatsServer) -> Iterator[Callable[..., MeshHandle]]:
    """Factory: start_sidecar({listener name: nats options}, broker_address=None) -> a ready Envoy in front
    of `broker` (or of broker_address); admin on a free port, which is also its --base-id; every listener
    on a free port."""
    handles: list[MeshHandle] = []

    def start(listeners: Mapping[str, Mapping[str, Any]], broker_address: str | None = None) -> MeshHandle:
        work: Path = tmp_path_factory.mktemp("mesh")
        handle = start_mesh_for_spec(sidecar_spec(broker_address or broker.address, listeners), work)
        handles.append(handle)
        return handle

    try:
        yield start
    finally:
        for handle in reversed(handles):
            handle.stop()
