"""Free TCP ports on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time


class Cancelled(Exception):
    """A wait was cut short by a stop request (SIGINT/SIGTERM during start-up)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out for `host` and that is free again (bind to :0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on host:port and it can be bound (without SO_REUSEPORT, which would hide a clash)."""
    if accepts_tcp(port, host, timeout=0.2):
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR as Envoy does: TIME_WAIT leftovers are fine, a listening socket is not
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def accepts_tcp(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if a TCP connection to host:port succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.05, cancel: threading.Event | None = None) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; returns its last value.
    Raises Cancelled as soon as `cancel` is set."""
    deadline = time.monotonic() + timeout
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled("stop requested")
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
