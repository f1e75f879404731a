"""Helpers for the integration tests: a raw NATS socket client, /stats deltas, nats-server monitoring."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterable

import nats

from evmesh.locate import nats_server_binary
from evmesh.runtime.ports import accepts_tcp, free_port, wait_until
from evmesh.runtime.process import ManagedProcess

CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'  # protocol 0: no async INFO after it
PONG = b"PONG\r\n"


def perm_pub(subject: str) -> bytes:
    """nats-server's -ERR line for a denied publish."""
    return f"-ERR 'Permissions Violation for Publish to \"{subject}\"'\r\n".encode()


def perm_sub(subject: str, queue: str | None = None) -> bytes:
    """nats-server's -ERR line for a denied subscription."""
    text = f"Permissions Violation for Subscription to \"{subject}\""
    if queue:
        text += f" using queue \"{queue}\""
    return f"-ERR '{text}'\r\n".encode()


def pub(subject: str, payload: bytes, reply: str | None = None) -> bytes:
    """A PUB frame."""
    args = f"{subject} {reply} {len(payload)}" if reply else f"{subject} {len(payload)}"
    return b"PUB " + args.encode() + b"\r\n" + payload + b"\r\n"


async def flushed(*clients) -> None:
    """A round trip that really follows every command the nats-py clients issued before it.

    nats-py 2.16's flush() writes its PING straight to the socket, ahead of commands still waiting in the
    client's pending buffer (a SUB just made, a PUB): its PONG does not prove that they reached the server.
    The second flush() runs after the first one's PONG, by when the buffer has been written."""
    for nc in clients:
        await nc.flush()
        await nc.flush()


class RawNats:
    """A NATS client on a bare TCP socket (asyncio streams, TCP_NODELAY): bytes in, bytes out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info_line: bytes):
        self.reader = reader
        self.writer = writer
        self.info_line = info_line
        self.info: dict[str, Any] = json.loads(info_line[len(b"INFO "):])

    @classmethod
    async def connect(cls, port: int, connect_line: bytes | None = CONNECT, timeout: float = 5.0) -> "RawNats":
        """Open a socket, read the server's INFO, send `connect_line` (None: send nothing)."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        info = await asyncio.wait_for(reader.readline(), timeout)
        assert info.startswith(b"INFO {") and info.endswith(b"\r\n"), info
        raw = cls(reader, writer, info)
        if connect_line:
            await raw.send(connect_line)
        return raw

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_bytewise(self, data: bytes, delay: float = 0.0005) -> None:
        """One byte per TCP segment (TCP_NODELAY plus a pause), so each byte is its own read at Envoy."""
        for i in range(len(data)):
            self.writer.write(data[i:i + 1])
            await self.writer.drain()
            await asyncio.sleep(delay)

    async def send_chunked(self, data: bytes, rng: random.Random, max_chunk: int, delay: float = 0.0005) -> None:
        """Random chunk sizes 1..max_chunk, one segment each."""
        i = 0
        while i < len(data):
            n = rng.randint(1, max_chunk)
            self.writer.write(data[i:i + n])
            await self.writer.drain()
            await asyncio.sleep(delay)
            i += n

    async def read_line(self, timeout: float = 5.0) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise ConnectionError("connection closed")
        return line

    async def ping(self, timeout: float = 5.0) -> list[bytes]:
        """PING, then every line received before the PONG (the server has handled all earlier frames)."""
        await self.send(b"PING\r\n")
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            line = await self.read_line(max(0.01, deadline - time.monotonic()))
            if line == PONG:
                return lines
            lines.append(line)

    async def read_until_closed(self, timeout: float = 5.0) -> bytes:
        """Everything until the peer closes (FIN or RST); TimeoutError if it stays open."""
        out = b""
        deadline = time.monotonic() + timeout
        while True:
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), max(0.01, deadline - time.monotonic()))
            except ConnectionResetError:
                return out
            if not chunk:
                return out
            out += chunk

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


class Stats:
    """The evmesh counters/gauges of one listener (names without the `evmesh.nats.<listener>.` prefix)."""

    def __init__(self, mesh, listener: str):
        self.mesh = mesh
        self.prefix = f"evmesh.nats.{listener}."

    def snapshot(self) -> dict[str, int]:
        return {k[len(self.prefix):]: v for k, v in self.mesh.stats().items() if k.startswith(self.prefix)}

    def delta(self, before: dict[str, int]) -> dict[str, int]:
        """Non-zero changes since `before`."""
        now = self.snapshot()
        out = {k: v - before.get(k, 0) for k, v in now.items()}
        return {k: v for k, v in out.items() if v != 0}

    async def wait_delta(self, before: dict[str, int], expected: dict[str, int], timeout: float = 5.0,
                         settle: float = 0.1) -> dict[str, int]:
        """Poll until every expected key has moved at least as far as expected (or timeout), let it settle,
        and return all non-zero deltas: the caller asserts on them exactly."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.delta(before)
            if all(d.get(k, 0) >= v for k, v in expected.items()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(settle)
        return self.delta(before)


    async def wait_active(self, value: int, timeout: float = 5.0) -> None:
        """Until the connections_active gauge equals `value` (closes are counted a moment after the FIN)."""
        deadline = time.monotonic() + timeout
        while self.snapshot().get("connections_active") != value and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert self.snapshot().get("connections_active") == value, self.snapshot()


def only(delta: dict[str, int], prefixes: Iterable[str]) -> dict[str, int]:
    """The entries of `delta` whose name starts with one of `prefixes`."""
    prefixes = tuple(prefixes)
    return {k: v for k, v in delta.items() if k.startswith(prefixes)}


class Bystander:
    """A nats-py client that keeps publishing to a subject it subscribes to, through the sidecar, while a test
    misbehaves on other connections. stop() checks that every message came back, in order."""

    def __init__(self, nc, subject: str, interval: float):
        self.nc, self.subject, self.interval = nc, subject, interval
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    @classmethod
    async def start(cls, url: str, subject: str, interval: float = 0.005) -> "Bystander":
        nc = await nats.connect(url, allow_reconnect=False)
        self = cls(nc, subject, interval)

        async def take(msg):
            self.received.append(msg.data)

        await nc.subscribe(subject, cb=take)
        await flushed(nc)
        self._task = asyncio.create_task(self._run())
        await self.wait_sent(3)
        return self

    async def _run(self) -> None:
        while not self._stop.is_set():
            data = b"%d" % len(self.sent)
            await self.nc.publish(self.subject, data)
            await flushed(self.nc)
            self.sent.append(data)
            await asyncio.sleep(self.interval)

    async def wait_sent(self, n: int, timeout: float = 5.0) -> None:
        """Until `n` more messages went out (proves traffic flows at this point of the test)."""
        target = len(self.sent) + n
        deadline = time.monotonic() + timeout
        while len(self.sent) < target and time.monotonic() < deadline and not self._task.done():
            await asyncio.sleep(0.005)
        assert len(self.sent) >= target, f"bystander stalled: {len(self.sent)} sent, {len(self.received)} received"

    async def stop(self) -> None:
        """Stop publishing; assert the connection survived and every message came back, in order."""
        await self.wait_sent(3)
        self._stop.set()
        await self._task
        try:
            assert self.nc.is_connected, "the bystander lost its connection"
            await flushed(self.nc)
            for _ in range(250):
                if len(self.received) >= len(self.sent):
                    break
                await asyncio.sleep(0.02)
            assert self.received == self.sent
        finally:
            await self.nc.close()


def varz(server) -> dict[str, Any]:
    """nats-server's /varz (in_msgs, in_bytes, ...) from its monitoring port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.monitor_port}/varz", timeout=2) as resp:
        return json.loads(resp.read())


class ConfiguredNats(ManagedProcess):
    """A nats-server started from a config file (`body` is appended after listen/http), stopped by PID."""

    def __init__(self, work_dir: Path, body: str):
        self.port, self.monitor_port = free_port(), free_port()
        work_dir.mkdir(parents=True, exist_ok=True)
        conf = work_dir / "nats.conf"
        conf.write_text(f"listen: 127.0.0.1:{self.port}\nhttp: 127.0.0.1:{self.monitor_port}\n{body}\n")
        super().__init__("nats-configured", [nats_server_binary(), "-c", conf], work_dir / "nats.log",
                         stop_signal=signal.SIGINT)
        if not wait_until(lambda: not self.alive() or accepts_tcp(self.port), 10):
            self.stop()
            raise self.failure("not accepting connections after 10s")
        if not self.alive():
            raise self.failure(f"exited with code {self.returncode} during start-up")
