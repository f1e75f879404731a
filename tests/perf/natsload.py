"""A small raw-socket NATS load generator for the benchmarks (no client library in the hot path).

Publishers send one pre-built batch of identical PUB frames over and over; the end of a run is
known exactly: a PING answered by PONG (the server has parsed every PUB before it), or a
subscriber that has counted every byte of the MSG frames it must receive.
"""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass

BATCH_BYTES = 64 * 1024  # one sendall() of pre-built PUB frames
WINDOW_BYTES = 4 << 20  # pub+sub: MSG bytes published but not yet received (slow-consumer limit: 64 MiB)
RECV_BYTES = 1 << 20
STALL_TIMEOUT_S = 5.0  # no progress for this long: the path has stopped
PING, PONG = b"PING\r\n", b"PONG\r\n"
CONNECT = {
    "verbose": False, "pedantic": False, "tls_required": False, "lang": "evmesh-bench", "version": "0",
    "protocol": 1, "headers": True, "no_responders": False, "echo": True,
}


class LoadError(RuntimeError):
    """The server or the proxy did not behave as the run expected."""


class Stalled(LoadError):
    """No progress for STALL_TIMEOUT_S: the path stopped reading or delivering."""


class RawNats:
    """One NATS client connection: INFO, CONNECT, PING/PONG handshake, then raw bytes."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        info = self.read_line()
        if not info.startswith(b"INFO "):
            raise LoadError(f"expected INFO, got {info[:80]!r}")
        self.info = json.loads(info[5:])
        self.sock.sendall(b"CONNECT " + json.dumps(CONNECT).encode() + b"\r\n")
        self.ping()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawNats:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fill(self) -> None:
        data = self.sock.recv(RECV_BYTES)
        if not data:
            raise LoadError("connection closed by the peer")
        self._buf += data

    def read_line(self) -> bytes:
        """The next control line; a server PING is answered with PONG and skipped."""
        while True:
            while b"\r\n" not in self._buf:
                self._fill()
            line, _, self._buf = self._buf.partition(b"\r\n")
            if line != b"PING":
                return line
            self.sock.sendall(b"PONG\r\n")

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def read_msg(self) -> tuple[bytes, bytes]:
        """The next MSG: (control line, payload)."""
        line = self.read_line()
        if not line.startswith(b"MSG "):
            raise LoadError(f"expected MSG, got {line[:80]!r}")
        size = int(line.rsplit(b" ", 1)[1])
        return line, self.read_exact(size + 2)[:-2]

    def ping(self) -> None:
        """PING and wait for its PONG: the server has processed everything sent before."""
        self.sock.sendall(b"PING\r\n")
        self.expect_pong()

    def expect_pong(self) -> None:
        """Wait for the next PONG (skipping +OK); -ERR is an error."""
        while True:
            line = self.read_line()
            if line == b"PONG":
                return
            if line.startswith(b"-ERR"):
                raise LoadError(f"server error: {line.decode(errors='replace')}")

    def subscribe(self, subject: str, sid: int) -> None:
        self.sock.sendall(f"SUB {subject} {sid}\r\n".encode())
        self.ping()


def pub_frame(subject: str, payload: bytes, reply: str | None = None) -> bytes:
    head = f"PUB {subject} {reply} {len(payload)}" if reply else f"PUB {subject} {len(payload)}"
    return head.encode() + b"\r\n" + payload + b"\r\n"


def msg_frame(subject: str, sid: int, payload: bytes, reply: str | None = None) -> bytes:
    head = f"MSG {subject} {sid} {reply} {len(payload)}" if reply else f"MSG {subject} {sid} {len(payload)}"
    return head.encode() + b"\r\n" + payload + b"\r\n"


@dataclass
class Batch:
    data: bytes  # `count` identical PUB frames
    count: int
    frame: bytes  # one PUB frame

    @classmethod
    def of(cls, subject: str, payload: bytes) -> Batch:
        frame = pub_frame(subject, payload)
        count = max(1, BATCH_BYTES // len(frame))
        return cls(frame * count, count, frame)


def publish(pub: RawNats, batch: Batch, n_batches: int, window: int | None = None) -> None:
    """Publish n_batches batches; returns once the server has parsed them all (PING/PONG).

    window None: no flow control, like a real client: write as fast as the socket takes them, one
    PING at the end. window N: a PING after each batch and at most N batches unacknowledged by their
    PONG (at most N * 64 KiB queued in sockets and proxies).
    Raises Stalled when the socket takes nothing, or no PONG comes, for STALL_TIMEOUT_S."""
    sock = pub.sock
    timeout = sock.gettimeout()
    sock.settimeout(STALL_TIMEOUT_S)
    try:
        if window is None:
            for _ in range(n_batches):
                sock.sendall(batch.data)
            pub.ping()
            return
        data = batch.data + b"PING\r\n"
        outstanding = 0
        for _ in range(n_batches):
            if outstanding == window:
                pub.expect_pong()
                outstanding -= 1
            sock.sendall(data)
            outstanding += 1
        for _ in range(outstanding):
            pub.expect_pong()
    except TimeoutError:
        raise Stalled(f"no progress for {STALL_TIMEOUT_S:g} s") from None
    finally:
        sock.settimeout(timeout)


def publish_and_receive(pub: RawNats, sub: RawNats, batch: Batch, n_batches: int, delivered_frame_len: int) -> int:
    """Publish n_batches batches while `sub` receives them; returns once every MSG byte has arrived.

    One thread, poll(): the publisher starts a batch only while fewer than WINDOW_BYTES of deliveries
    are in flight, so the subscriber never becomes a slow consumer. The subscriber counts bytes, not
    frames; a server PING between MSGs (nats-server sends one ~2 s after connect to measure RTT) is
    found with bytes.count (no MSG frame of this workload contains "PING"), answered and not counted.
    Returns the MSG bytes received."""
    psock, ssock = pub.sock, sub.sock
    psock.setblocking(False)
    ssock.setblocking(False)
    expected = n_batches * batch.count * delivered_frame_len
    per_batch = batch.count * delivered_frame_len
    received = len(sub._buf)  # bytes already buffered by the handshake reader (normally 0)
    sub._buf = b""
    view = memoryview(batch.data)
    off = sent = 0
    buf = bytearray(RECV_BYTES)
    poller = select.poll()
    poller.register(ssock, select.POLLIN)
    pfd, sfd = psock.fileno(), ssock.fileno()
    writing = False
    tail = b""  # the last bytes of the previous read: a PING may be split across reads
    last_progress = time.monotonic()
    try:
        while received < expected:
            # a started batch is always finished: the stream must not pause inside a frame
            want = off > 0 or (sent < n_batches and sent * per_batch - received < WINDOW_BYTES)
            if want != writing:
                if want:
                    poller.register(psock, select.POLLOUT)
                else:
                    poller.unregister(psock)
                writing = want
            events = poller.poll(1000)
            if not events and time.monotonic() - last_progress > STALL_TIMEOUT_S:
                raise Stalled(f"{received} of {expected} bytes received, {sent} of {n_batches} batches sent")
            for fd, ev in events:
                if fd == sfd:
                    n = ssock.recv_into(buf)
                    if n == 0:
                        raise LoadError(f"subscriber closed after {received} of {expected} bytes")
                    pings = buf.count(PING, 0, n) + (tail + buf[:min(5, n)]).count(PING)
                    tail = buf[max(0, n - 5):n]
                    if pings:
                        ssock.sendall(PONG * pings)
                    received += n - pings * len(PING)
                elif fd == pfd:
                    if ev & (select.POLLERR | select.POLLHUP):
                        raise LoadError("publisher connection failed")
                    try:
                        off += psock.send(view[off:])
                    except BlockingIOError:
                        continue
                    if off == len(view):
                        off = 0
                        sent += 1
                last_progress = time.monotonic()
    finally:
        psock.setblocking(True)
        ssock.setblocking(True)
    return received


def request_reply(req: RawNats, rsp: RawNats, payload: bytes, count: int, inbox: str) -> list[int]:
    """`count` sequential requests from `req` to the responder `rsp`; round trips in ns.

    `rsp` must be subscribed to bench.req with sid 1, `req` to `inbox` with sid 1."""
    request = pub_frame("bench.req", payload, reply=inbox)
    expect_req = f"MSG bench.req 1 {inbox} {len(payload)}".encode()
    reply = pub_frame(inbox, payload)
    expect_reply = f"MSG {inbox} 1 {len(payload)}".encode()
    out = []
    clock = time.perf_counter_ns
    for _ in range(count):
        t0 = clock()
        req.sock.sendall(request)
        if rsp.read_msg() != (expect_req, payload):
            raise LoadError("responder got an unexpected message")
        rsp.sock.sendall(reply)
        if req.read_msg() != (expect_reply, payload):
            raise LoadError("requester got an unexpected message")
        out.append(clock() - t0)
    return out
