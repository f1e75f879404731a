"""`evmesh run` as a real subprocess: real nats-server, real Envoy with the module, a real NATS client."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nats
import pytest
import yaml

from evmesh.errors import NativeLibraryMissing
from evmesh.locate import envoy_module_path
from evmesh.runtime.ports import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "envoy_configs" / "nats-example.yaml"
EVMESH = Path(sys.prefix) / "bin" / "evmesh"
START_TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def module_built():
    try:
        envoy_module_path()
    except NativeLibraryMissing as exc:
        pytest.fail(f"{exc} (`evmesh run` needs the built libevmesh.so)", pytrace=False)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


class Run:
    """`evmesh run SPEC` with its stdout read line by line in a thread."""

    def __init__(self, spec: Path, work_dir: Path):
        self.proc = subprocess.Popen(
            [str(EVMESH), "run", str(spec), "--work-dir", str(work_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float = START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.kill()
                raise AssertionError(f"no {prefix!r} line; stdout={self.stdout} stderr={self.proc.stderr.read()}")
            self.stdout.append(line)
            if line.startswith(prefix):
                return line

    def pids(self) -> dict[str, int]:
        out = {}
        for line in self.stdout:
            if m := re.match(r"embedded nats broker (\S+): .*\(pid (\d+),", line):
                out[m.group(1)] = int(m.group(2))
            elif m := re.match(r"envoy: pid (\d+),", line):
                out["envoy"] = int(m.group(1))
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def example_spec(tmp_path) -> tuple[Path, int, int]:
    """The example spec with free admin and listener ports."""
    data = yaml.safe_load(EXAMPLE.read_text())
    admin_port, listener_port = free_port(), free_port()
    data["admin"]["port"] = admin_port
    data["listeners"][0]["port"] = listener_port
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, admin_port, listener_port


@pytest.fixture
def run_example(example_spec, tmp_path):
    runs: list[Run] = []

    def start() -> Run:
        run = Run(example_spec[0], tmp_path / "work")
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.wait(30)
            except subprocess.TimeoutExpired:
                run.kill()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_run_example_end_to_end(run_example, example_spec, stop_signal):
    _, admin_port, listener_port = example_spec
    run = run_example()
    metrics = run.wait_for("metrics:")
    assert metrics == f"metrics: http://127.0.0.1:{admin_port}/stats?filter=evmesh"
    listener_line = next(x for x in run.stdout if x.startswith("nats listener orders:"))
    assert re.fullmatch(
        rf"nats listener orders: nats://127\.0\.0\.1:{listener_port} -> broker nats-main \(127\.0\.0\.1:\d+\)",
        listener_line,
    )
    pids = run.pids()
    assert set(pids) == {"envoy", "nats-main"}

    nc = await nats.connect(f"nats://127.0.0.1:{listener_port}")
    sub = await nc.subscribe("orders.new")
    await nc.publish("orders.new", b"through the sidecar")
    msg = await sub.next_msg(timeout=5)
    assert msg.data == b"through the sidecar"
    await nc.close()

    run.proc.send_signal(stop_signal)
    assert run.proc.wait(30) == 0, run.proc.stderr.read()
    assert "Traceback" not in run.proc.stderr.read()
    assert all(_gone(pid) for pid in pids.values()), pids


def test_run_child_death_stops_the_rest_and_exits_1(run_example):
    run = run_example()
    run.wait_for("metrics:")
    pids = run.pids()
    os.kill(pids["nats-main"], signal.SIGKILL)
    assert run.proc.wait(30) == 1
    stderr = run.proc.stderr.read()
    assert re.match(r"error: nats-main \(pid \d+\) exited unexpectedly with code -9; log: ", stderr), stderr
    assert "--- log tail ---" in stderr and "Traceback" not in stderr
    assert _gone(pids["envoy"])


def test_run_refuses_a_listener_port_in_use(example_spec, tmp_path):
    spec, _, listener_port = example_spec
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", listener_port))
        busy.listen()
        proc = subprocess.run([str(EVMESH), "run", str(spec), "--work-dir", str(tmp_path / "w")],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == f"error: port already in use: listener orders: 127.0.0.1:{listener_port}\n"
    assert proc.stdout == ""
