"""pytest fixtures for real Kafka brokers: kafka_cluster (3 nodes), kafka_single (1 node), tansu_broker.

The Apache Kafka clusters are session-scoped (a JVM start is slow): tests share them and must use unique
topic and group names (`unique_name`). Tansu is per test. Everything is stopped by PID at teardown.
A missing Java or Maven, or a broker that does not start, fails the test with the reason; it never skips.

Enable with `pytest_plugins = ["evmesh.testing.kafka_fixtures"]` in a conftest.py.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..errors import EvmeshError, ProcessError
from ..runtime.kafka import KafkaCluster, Tansu, ensure_kafka_jars, start_kafka_cluster, start_tansu

_names = itertools.count()


def _fail(exc: EvmeshError) -> None:
    pytest.fail(exc.details() if isinstance(exc, ProcessError) else str(exc), pytrace=False)


def _cluster(tmp_path_factory: pytest.TempPathFactory, name: str, nodes: int) -> Iterator[KafkaCluster]:
    try:
        ensure_kafka_jars()
        cluster = start_kafka_cluster(name, tmp_path_factory.mktemp(name), nodes=nodes)
    except EvmeshError as exc:
        _fail(exc)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Apache Kafka 4.1.1, 3 combined KRaft nodes (ids 1-3), replication factor 3, shared by the session:
    .bootstrap, .nodes [(id, host, port)], .pids(), .add_broker(), .stop_node(id), .start_node(id)."""
    yield from _cluster(tmp_path_factory, "kafka3", 3)


@pytest.fixture(scope="session")
def kafka_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Apache Kafka 4.1.1, one combined KRaft node (id 1), shared by the session: .bootstrap, .port, .pid."""
    yield from _cluster(tmp_path_factory, "kafka1", 1)


@pytest.fixture
def tansu_broker(tmp_path: Path) -> Iterator[Tansu]:
    """A fresh Tansu (memory storage) per test: .port, .address, .bootstrap, .pid. For consumer groups use
    session.timeout.ms=2000 and heartbeat.interval.ms=300 (Tansu holds the first JoinGroup ~session/2)."""
    try:
        broker = start_tansu("tansu", tmp_path / "tansu")
    except EvmeshError as exc:
        _fail(exc)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """unique_name("orders") -> "orders-<test name>-<pid>-<n>": topic and group names that no other test of
    the session (or a concurrent session) uses on a shared cluster."""

    def make(prefix: str) -> str:
        test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
        return f"{prefix}-{test}-{os.getpid()}-{next(_names)}"

    return make
