"""A local RabbitMQ (Debian's rabbitmq-server) as an ordinary process on 127.0.0.1.

The /usr/sbin wrappers switch to a system user; we run the scripts in
/usr/lib/rabbitmq/bin directly with an isolated environment (HOME with its own
Erlang cookie, node name, ports, data, logs, config, plugins, PID file), and
start our own epmd first so that Erlang does not daemonise one that outlives
the node. Ready when `rabbitmqctl await_startup` succeeds; stopped with
`rabbitmqctl stop PIDFILE`, then epmd by its PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from ..errors import ProcessError
from .ports import accepts_tcp, free_port, wait_until
from .process import ManagedProcess

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
_DIST_ARGS = "-kernel inet_dist_use_interface {127,0,0,1}"


def rabbitmq_available() -> bool:
    """Debian's rabbitmq-server and epmd are installed (apt-get install -y rabbitmq-server)."""
    return (RABBITMQ_BIN / "rabbitmq-server").exists() and shutil.which("epmd") is not None


class RabbitMQ:
    """A started RabbitMQ node and its epmd. `port` speaks AMQP 0-9-1."""

    def __init__(self, name: str, work_dir: Path, port: int | None = None):
        if not rabbitmq_available():
            raise ProcessError("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
        self.name = name
        self.port = port or free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.dir = Path(work_dir) / f"{name}-rabbitmq"
        self.node = f"{name}-{self.port}@localhost"
        home = self.dir / "home"
        for d in (home, self.dir / "mnesia", self.dir / "log"):
            d.mkdir(parents=True, exist_ok=True)
        conf_env = self.dir / "rabbitmq-env.conf"
        conf_env.write_text("")
        config = self.dir / "rabbitmq.conf"
        config.write_text("loopback_users = none\n")
        plugins = self.dir / "enabled_plugins"
        plugins.write_text("[].\n")
        self.pid_file = self.dir / "rabbitmq.pid"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(home),
            "RABBITMQ_CONF_ENV_FILE": str(conf_env),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": _DIST_ARGS,
            "RABBITMQ_CTL_ERL_ARGS": _DIST_ARGS,
        }
        self.epmd = ManagedProcess(
            f"{name}-epmd", ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            self.dir / "epmd.log", env=self.env,
        )
        try:
            if not wait_until(lambda: not self.epmd.alive() or accepts_tcp(self.epmd_port), 10):
                raise self.epmd.failure("epmd did not listen")
            if not self.epmd.alive():
                raise self.epmd.failure(f"epmd exited with code {self.epmd.returncode}")
            self.server = ManagedProcess(
                name, [RABBITMQ_BIN / "rabbitmq-server"], self.dir / "server.log", env=self.env,
            )
        except BaseException:
            self.epmd.stop()
            raise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Runs rabbitmqctl against this node (same cookie, epmd and interface)."""
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        )

    def alive(self) -> bool:
        return self.server.alive()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, cancel: threading.Event | None = None) -> None:
        def ready() -> bool:
            if not self.server.alive():
                return True
            try:
                return self.ctl("await_startup", "--timeout", "5", timeout=15).returncode == 0 and accepts_tcp(self.port)
            except subprocess.TimeoutExpired:
                return False

        if not wait_until(ready, timeout, interval=0.5, cancel=cancel):
            raise self.server.failure(f"not ready after {timeout:.0f}s")
        if not self.server.alive():
            raise self.server.failure(f"exited with code {self.server.returncode} during start-up")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """rabbitmqctl stop PIDFILE (waits for the node to exit), then epmd; SIGKILL as the last resort."""
        try:
            if self.server.alive():
                try:
                    self.ctl("stop", str(self.pid_file), timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
            return self.server.stop(timeout=5)
        finally:
            self.epmd.stop(timeout=5)

    def __enter__(self) -> RabbitMQ:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_rabbitmq(
    name: str, work_dir: Path, port: int | None = None, cancel: threading.Event | None = None
) -> RabbitMQ:
    """Start a RabbitMQ node (its own epmd, data under work_dir) and wait until it accepts AMQP."""
    broker = RabbitMQ(name, work_dir, port)
    try:
        broker.wait_ready(cancel=cancel)
    except BaseException:
        broker.stop()
        raise
    return broker
