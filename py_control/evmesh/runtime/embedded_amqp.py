"""An embedded RabbitMQ for an addressless `protocol: amqp` broker, shaped like a ManagedProcess so that
the mesh starts, watches and stops it like any other child (RabbitMQ is a node plus its own epmd)."""

from __future__ import annotations

import threading
from pathlib import Path

from ..errors import ProcessError
from .rabbitmq import RabbitMQ, start_rabbitmq


class EmbeddedRabbitMQ:
    """The mesh's view of a started RabbitMQ: `pid` is the rabbitmq-server process we started,
    `node_pid` the Erlang VM (its PID file), `epmd_pid` its epmd. Stops with `rabbitmqctl stop PIDFILE`."""

    def __init__(self, broker: RabbitMQ):
        self.broker = broker
        self.name = broker.name
        self.port = broker.port
        self.pid = broker.server.pid
        self.epmd_pid = broker.epmd.pid
        self.log_path = broker.server.log_path
        self.node_pid = self._read_node_pid()

    def _read_node_pid(self) -> int | None:
        try:
            return int(self.broker.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def __repr__(self) -> str:
        return f"<EmbeddedRabbitMQ {self.name} pid={self.pid} node_pid={self.node_pid} port={self.port}>"

    @property
    def address(self) -> str:
        return self.broker.address

    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def returncode(self) -> int | None:
        return self.broker.server.returncode

    def alive(self) -> bool:
        return self.broker.alive()

    def all_pids(self) -> list[int]:
        """Every process of this broker: the server script, the Erlang VM, epmd."""
        return [p for p in (self.pid, self.node_pid, self.epmd_pid) if p is not None]

    def log_text(self) -> str:
        return self.broker.server.log_text()

    def log_tail(self, lines: int = 30) -> str:
        return self.broker.server.log_tail(lines)

    def failure(self, message: str) -> ProcessError:
        return self.broker.server.failure(message)

    def stop(self, timeout: float | None = None) -> int | None:
        return self.broker.stop() if timeout is None else self.broker.stop(timeout)


def start_embedded_rabbitmq(
    name: str, work_dir: Path, port: int | None = None, cancel: threading.Event | None = None
) -> EmbeddedRabbitMQ:
    """Start RabbitMQ on free ports under work_dir; ready (rabbitmqctl await_startup) on return."""
    return EmbeddedRabbitMQ(start_rabbitmq(name, Path(work_dir), port, cancel=cancel))
