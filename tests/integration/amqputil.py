"""Helpers for the AMQP integration tests: a hand-written Envoy bootstrap with the evmesh `amqp`
filter in front of a real RabbitMQ, and module-scoped fixtures that start both and stop them by PID.

The bootstrap is written by hand on purpose: these tests pin the filter's behaviour independently of the
spec/render pipeline (which tests/integration/test_run_amqp.py covers end to end).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from evmesh.runtime.envoy import Envoy, start_envoy
from evmesh.runtime.ports import free_port
from evmesh.runtime.rabbitmq import RabbitMQ, rabbitmq_available, start_rabbitmq

FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def bootstrap(admin_port: int, broker_port: int, listeners: Mapping[int, Mapping[str, Any]],
              buffer_limit: int | None = None) -> dict[str, Any]:
    """Envoy bootstrap: one listener per {port: amqp filter config}, each evmesh.amqp -> tcp_proxy -> broker."""

    def listener(port: int, cfg: Mapping[str, Any]) -> dict[str, Any]:
        limit = {"per_connection_buffer_limit_bytes": buffer_limit} if buffer_limit else {}
        return {
            "name": f"amqp_{port}",
            **limit,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [
                {"name": "evmesh.amqp", "typed_config": {
                    "@type": FILTER_TYPE,
                    "dynamic_module_config": {"name": "evmesh", "do_not_close": True, "metrics_namespace": "evmesh"},
                    "filter_name": "amqp",
                    "filter_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": dict(cfg)},
                }},
                {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                    "@type": TCP_PROXY_TYPE, "stat_prefix": f"amqp_{port}", "cluster": "rabbitmq"}},
            ]}],
        }

    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [listener(p, c) for p, c in listeners.items()],
            "clusters": [{
                "name": "rabbitmq", "type": "STATIC", "connect_timeout": "2s",
                "load_assignment": {"cluster_name": "rabbitmq", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": broker_port}}}}
                ]}]},
            }],
        },
    }


def start_sidecar(work: Path, broker: RabbitMQ, configs: list[Mapping[str, Any]],
                  buffer_limit: int | None = None) -> tuple[Envoy, list[int]]:
    """Envoy with one AMQP listener per filter config; returns it and the listener ports (in order)."""
    admin = free_port()
    ports = [free_port() for _ in configs]
    path = work / "envoy.json"
    cfg = bootstrap(admin, broker.port, dict(zip(ports, configs, strict=True)), buffer_limit)
    path.write_text(json.dumps(cfg, indent=1))
    return start_envoy(path, admin, ports, work / "envoy.log"), ports


def stat_delta(after: Mapping[str, int], before: Mapping[str, int], name: str) -> int:
    return after.get(name, 0) - before.get(name, 0)


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    if not rabbitmq_available():
        pytest.skip("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
    broker = start_rabbitmq("rmq", tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield broker
    finally:
        broker.stop()
