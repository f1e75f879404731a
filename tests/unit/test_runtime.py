"""Runtime building blocks with real sockets and real processes."""

from __future__ import annotations

import signal
import socket
import sys

import pytest

from evmesh import ProcessError
from evmesh.runtime import ManagedProcess, free_port, port_is_free, wait_until
from evmesh.runtime.nats import NatsServer


def test_port_is_free_ignores_time_wait_but_not_listeners():
    port = free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    assert not port_is_free(port)
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its end goes to TIME_WAIT
    client.close()
    server.close()
    assert port_is_free(port)


def test_stop_escalates_to_sigkill(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    proc = ManagedProcess("stubborn", [sys.executable, "-c", code], tmp_path / "stubborn.log")
    assert wait_until(lambda: "ready" in proc.log_text(), 10)
    assert proc.stop(timeout=0.5) == -signal.SIGKILL
    assert not proc.alive()


def test_start_failure_carries_the_log_tail(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        server = NatsServer("clash", tmp_path, port=port)
        with pytest.raises(ProcessError) as info:
            server.wait_ready(timeout=10)
    finally:
        blocker.close()
    assert str(info.value).startswith(f"clash (pid {server.pid}): exited with code 1 during start-up; log: ")
    assert "address already in use" in info.value.log_tail
    assert "--- log tail ---" in info.value.details()
