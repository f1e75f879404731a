"""-ERR replies while the server-to-client stream is in the middle of a big message.

A subscriber that reads slowly makes Envoy pause the upstream in the middle of a 16 MB MSG. The sidecar may
only inject its own -ERR at a frame boundary; the order the client sees must still be nats-server's order:
the MSG, then the -ERR, then the PONG of a later PING; for a fatal error the -ERR before the close. A real
nats-server with the same permissions (the sidecar sits in front of that very server) is the reference.
"""

from __future__ import annotations

import asyncio
import socket
import time

import nats
import pytest

from natsutil import ConfiguredNats, RawNats, flushed

BUSY = "busy"
BIG = 16_000_000
SERVER_CONF = """max_payload: 16MB
authorization {
  users = [{user: u, password: p, permissions: {publish: {deny: ["secret.>"]}, subscribe: {deny: ["secret.>"]}}}]
}"""
CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"user":"u","pass":"p"}\r\n'
PAUSED = "cluster.nats-main.upstream_flow_control_paused_reading_total"


@pytest.fixture(scope="module")
def big_server(tmp_path_factory):
    server = ConfiguredNats(tmp_path_factory.mktemp("big-nats"), SERVER_CONF)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mesh(start_sidecar, big_server):
    return start_sidecar({BUSY: {"acl": {"publish": {"deny": ["secret.>"]}}}},
                         broker_address=f"127.0.0.1:{big_server.port}")


async def slow_subscriber(port: int) -> RawNats:
    """A raw client with a tiny receive buffer, subscribed to `big`; it reads nothing until told to."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    raw = RawNats(reader, writer, await asyncio.wait_for(reader.readline(), 5))
    await raw.send(CONNECT + b"SUB big 1\r\n")
    assert await raw.ping() == []
    return raw


def frames_of(stream: bytes) -> list[str]:
    """The stream as a list of control lines (MSG payloads skipped by their size; PINGs left out)."""
    out, i = [], 0
    while i < len(stream):
        j = stream.find(b"\r\n", i)
        if j < 0:
            out.append(f"<{len(stream) - i} bytes of a partial line>")
            break
        line = stream[i:j].decode(errors="replace")
        i = j + 2
        if line.startswith("MSG "):
            size = int(line.split()[-1])
            if i + size + 2 > len(stream):
                out.append(f"<{line} cut after {len(stream) - i} of {size} bytes>")
                break
            i += size + 2
        if line != "PING":
            out.append(line)
    return out


async def exchange(port: int, server_port: int, frames: bytes, mesh=None) -> tuple[list[str], bool]:
    """Stall a slow subscriber in the middle of a BIG message, send `frames` on it, then read.
    Returns the control lines received up to the first PONG (or everything until the close) and whether
    the connection was closed."""
    raw = await slow_subscriber(port)
    publisher = await nats.connect(f"nats://u:p@127.0.0.1:{server_port}", allow_reconnect=False)
    try:
        paused = mesh.stats().get(PAUSED, 0) if mesh else 0
        await publisher.publish("big", b"B" * BIG)
        await flushed(publisher)
        if mesh:  # Envoy stopped reading the server: the message is stuck half way
            deadline = time.monotonic() + 5
            while mesh.stats().get(PAUSED, 0) == paused and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert mesh.stats().get(PAUSED, 0) > paused, "Envoy never paused the upstream"
        else:
            await asyncio.sleep(0.3)
        await raw.send(frames)
        await asyncio.sleep(0.3)  # let the sidecar (or server) act on them while the MSG is still stuck
        stream, closed = bytearray(), False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(raw.reader.read(1 << 20), max(0.01, deadline - time.monotonic()))
            except (asyncio.TimeoutError, ConnectionResetError):
                break
            if not chunk:
                closed = True
                break
            stream += chunk
            if b"PONG\r\n" in stream[-len(chunk) - 6:]:
                break
        lines = frames_of(bytes(stream))
        if "PONG" in lines:
            lines = lines[:lines.index("PONG") + 1]
        return lines, closed
    finally:
        await publisher.close()
        await raw.close()


async def test_denied_publish_err_comes_before_the_pong_of_a_later_ping(mesh, big_server):
    frames = b"PUB secret.x 1\r\nx\r\nPING\r\n"
    expected = ["MSG big 1 16000000", "-ERR 'Permissions Violation for Publish to \"secret.x\"'", "PONG"]
    assert await exchange(big_server.port, big_server.port, frames) == (expected, False)
    assert await exchange(mesh.listener_port(BUSY), big_server.port, frames, mesh) == (expected, False)


async def test_garbage_err_is_sent_after_the_message_in_flight_then_the_close(mesh, big_server):
    frames = b"FOO BAR\r\n"
    expected = ["MSG big 1 16000000", "-ERR 'Unknown Protocol Operation'"]
    assert await exchange(big_server.port, big_server.port, frames) == (expected, True)
    assert await exchange(mesh.listener_port(BUSY), big_server.port, frames, mesh) == (expected, True)
