"""An embedded nats-server with JetStream, on 127.0.0.1."""

from __future__ import annotations

import signal
import threading
import urllib.request
from pathlib import Path

from ..locate import nats_server_binary
from .ports import free_port, wait_until
from .process import ManagedProcess

READY_TIMEOUT_S = 15.0


def _healthy(monitor_port: int) -> bool:
    url = f"http://127.0.0.1:{monitor_port}/healthz?js-enabled-only=true"
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return resp.status == 200
    except OSError:
        return False


class NatsServer(ManagedProcess):
    """A started nats-server. Stops with SIGINT (nats-server's clean shutdown)."""

    def __init__(self, name: str, work_dir: Path, port: int | None = None, monitor_port: int | None = None):
        self.port = port or free_port()
        self.monitor_port = monitor_port or free_port()
        self.store_dir = Path(work_dir) / f"{name}-jetstream"
        argv = [
            nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port),
            "-js", "-sd", str(self.store_dir),
        ]
        super().__init__(name, argv, Path(work_dir) / f"{name}.log", stop_signal=signal.SIGINT)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, cancel: threading.Event | None = None) -> None:
        if not wait_until(lambda: not self.alive() or _healthy(self.monitor_port), timeout, cancel=cancel):
            raise self.failure(f"not healthy on monitor port {self.monitor_port} after {timeout:.0f}s")
        if not self.alive():
            raise self.failure(f"exited with code {self.returncode} during start-up")


def start_nats_server(
    name: str,
    work_dir: Path,
    port: int | None = None,
    monitor_port: int | None = None,
    cancel: threading.Event | None = None,
) -> NatsServer:
    """Start nats-server (JetStream on, store under work_dir) and wait until it is healthy."""
    server = NatsServer(name, work_dir, port, monitor_port)
    try:
        server.wait_ready(cancel=cancel)
    except BaseException:
        server.stop()
        raise
    return server
