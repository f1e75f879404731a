"""Envoy with the evmesh dynamic module, on 127.0.0.1."""

from __future__ import annotations

import collections
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from ..errors import ProcessError
from ..locate import envoy_binary, envoy_module_path
from .ports import accepts_tcp, wait_until
from .process import ManagedProcess

READY_TIMEOUT_S = 30.0


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class Envoy(ManagedProcess):
    """A started Envoy. base_id must differ between Envoys on one machine (default: the admin port)."""

    def __init__(
        self,
        config_path: Path,
        admin_port: int,
        listener_ports: Iterable[int],
        log_path: Path,
        base_id: int | None = None,
        modules_dir: Path | None = None,
        log_level: str = "info",
    ):
        self.config_path = Path(config_path)
        self.admin_port = admin_port
        self.listener_ports = tuple(listener_ports)
        self.base_id = admin_port if base_id is None else base_id
        modules = Path(modules_dir) if modules_dir else envoy_module_path().parent
        env = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=str(modules))
        argv = [envoy_binary(), "-c", self.config_path, "--base-id", str(self.base_id), "--log-level", log_level]
        super().__init__("envoy", argv, log_path, env=env)

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def _ready(self) -> bool:
        try:
            status, body = _http_get(f"{self.admin_url}/ready", timeout=0.5)
        except OSError:
            return False
        if status != 200 or body.strip() != "LIVE":
            return False
        for port in self.listener_ports:
            if not accepts_tcp(port):
                return False
            self._probes[port] += 1
        return True

    def _probes_settled(self) -> bool:
        """Envoy has counted and closed every readiness probe connection, so that a test's
        "before" stats snapshot taken now already holds them."""
        stats = self.stats()
        for port, probes in self._probes.items():
            suffix = f"_{port}.downstream_cx_"
            total = sum(v for k, v in stats.items() if k.startswith("listener.") and k.endswith(suffix + "total"))
            active = sum(v for k, v in stats.items() if k.startswith("listener.") and k.endswith(suffix + "active"))
            if total < probes or active:
                return False
        return True

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, cancel: threading.Event | None = None) -> None:
        """Wait for admin /ready LIVE and every listener accepting, then for the probes to settle."""
        self._probes = collections.Counter()
        if not wait_until(lambda: not self.alive() or self._ready(), timeout, interval=0.1, cancel=cancel):
            raise self.failure(
                f"not ready after {timeout:.0f}s (admin /ready LIVE and listeners {list(self.listener_ports)} accepting)"
            )
        if not self.alive():
            raise self.failure(f"exited with code {self.returncode} during start-up")
        if not wait_until(lambda: not self.alive() or self._probes_settled(), timeout, cancel=cancel):
            raise self.failure(f"readiness probe connections still open after {timeout:.0f}s")
        if not self.alive():
            raise self.failure(f"exited with code {self.returncode} during start-up")

    def stats(self) -> dict[str, int]:
        """Counters and gauges from the admin /stats (histograms left out)."""
        status, body = _http_get(f"{self.admin_url}/stats?format=json")
        if status != 200:
            raise ProcessError(f"envoy admin /stats answered {status}")
        out: dict[str, int] = {}
        for item in json.loads(body).get("stats", []):
            if "value" in item and isinstance(item["value"], int):
                out[item["name"]] = item["value"]
        return out


def start_envoy(
    config_path: Path,
    admin_port: int,
    listener_ports: Iterable[int],
    log_path: Path,
    base_id: int | None = None,
    modules_dir: Path | None = None,
    cancel: threading.Event | None = None,
) -> Envoy:
    """Start Envoy on a rendered bootstrap and wait until it is LIVE with every listener accepting."""
    envoy = Envoy(config_path, admin_port, listener_ports, log_path, base_id, modules_dir)
    try:
        envoy.wait_ready(cancel=cancel)
    except BaseException:
        envoy.stop()
        raise
    return envoy
