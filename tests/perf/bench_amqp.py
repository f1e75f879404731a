"""A first AMQP benchmark of evmesh: direct vs Envoy tcp_proxy vs Envoy + evmesh amqp filter.

One RabbitMQ, one Envoy (--concurrency 1) with two listeners (tcp_proxy only; evmesh amqp filter with an
ACL and metric groups that deny nothing, then tcp_proxy). A raw-socket AMQP client (no client library in
the hot path) runs, per path and payload:
  publish  N publishes with confirms on, sent in large writes; ends when every confirm is back
  consume  N messages already in a queue consumed with no-ack; ends at the last delivery
Envoy CPU comes from /proc/PID/task/*/schedstat before/after each run. Rounds rotate the path order; the
report prints medians and the ratios to tcp_proxy.

Usage: .venv/bin/python tests/perf/bench_amqp.py [--msgs 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from amqputil import bootstrap  # noqa: E402

from evmesh.runtime import free_port, start_envoy  # noqa: E402
from evmesh.runtime.rabbitmq import start_rabbitmq  # noqa: E402

PROTO = b"AMQP\x00\x00\x09\x01"


def ss(s: bytes) -> bytes:
    return bytes([len(s)]) + s


def ls(s: bytes) -> bytes:
    return struct.pack(">I", len(s)) + s


def frame(t: int, ch: int, p: bytes) -> bytes:
    return struct.pack(">BHI", t, ch, len(p)) + p + b"\xce"


def method(ch: int, c: int, m: int, args: bytes = b"") -> bytes:
    return frame(1, ch, struct.pack(">HH", c, m) + args)


class Raw:
    """A minimal AMQP 0-9-1 client on a socket: handshake, then raw frames."""

    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.s.sendall(PROTO)
        self.expect(10, 10)
        self.s.sendall(method(0, 10, 11, ls(b"") + ss(b"PLAIN") + ls(b"\x00guest\x00guest") + ss(b"en_US")))
        tune = self.expect(10, 30)
        _, fmax, _ = struct.unpack(">HIH", tune[:8])
        self.s.sendall(method(0, 10, 31, struct.pack(">HIH", 2047, fmax, 0)) +
                       method(0, 10, 40, ss(b"/") + ss(b"") + b"\x00") + method(1, 20, 10, ss(b"")))
        self.expect(10, 41)
        self.expect(20, 11)

    def read_frame(self) -> tuple[int, int, bytes]:
        while True:
            if len(self.buf) >= 7:
                t, ch, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= size + 8:
                    payload = self.buf[7:7 + size]
                    self.buf = self.buf[size + 8:]
                    return t, ch, payload
            data = self.s.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            self.buf += data

    def expect(self, c: int, m: int) -> bytes:
        while True:
            t, _, p = self.read_frame()
            if t == 1:
                cid, mid = struct.unpack(">HH", p[:4])
                if (cid, mid) == (c, m):
                    return p[4:]
                if (cid, mid) in ((10, 50), (20, 40)):
                    raise ConnectionError(f"closed: {p!r}")

    def close(self) -> None:
        self.s.close()


def publish_run(port: int, queue: bytes, payload: int, n: int) -> None:
    c = Raw(port)
    c.s.sendall(method(1, 50, 10, struct.pack(">H", 0) + ss(queue) + b"\x00" + ls(b"")))
    c.expect(50, 11)
    c.s.sendall(method(1, 85, 10, b"\x00"))
    c.expect(85, 11)
    one = (method(1, 60, 40, struct.pack(">H", 0) + ss(b"") + ss(queue) + b"\x00") +
           frame(2, 1, struct.pack(">HHQH", 60, 0, payload, 0)) + frame(3, 1, b"p" * payload))
    batch = one * max(1, 65536 // len(one))
    per = len(batch) // len(one)
    sent = 0
    while sent + per <= n:
        c.s.sendall(batch)
        sent += per
    c.s.sendall(one * (n - sent))
    acked = 0
    while acked < n:  # confirms may be multiple
        t, _, p = c.read_frame()
        if t == 1 and p[:4] == struct.pack(">HH", 60, 80):
            tag, = struct.unpack(">Q", p[4:12])
            acked = max(acked, tag)
    c.close()


def consume_run(port: int, queue: bytes, n: int) -> None:
    c = Raw(port)
    c.s.sendall(method(1, 60, 20, struct.pack(">H", 0) + ss(queue) + ss(b"") + b"\x02" + ls(b"")))  # no-ack
    c.expect(60, 21)
    got = 0
    while got < n:
        t, _, p = c.read_frame()
        if t == 1 and p[:4] == struct.pack(">HH", 60, 60):
            got += 1
    c.close()


def cpu_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--msgs", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--payloads", default="128,4096")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_amqp-"))
    broker = start_rabbitmq("bench", work)
    envoy = None
    try:
        admin, tp, ev = free_port(), free_port(), free_port()
        cfg = bootstrap(admin, broker.port, {ev: {
            "stat_prefix": "bench",
            "acl": {"publish": {"deny": [{"exchange": "*", "routing_key": "secret.#"}]}, "consume": {"deny": ["private.#"]}},
            "exchanges": [{"name": "default", "exchange": ""}], "queues": [{"name": "bench", "pattern": "bench.#"}]}})
        cfg["static_resources"]["listeners"].append({
            "name": "tcp_proxy", "address": {"socket_address": {"address": "127.0.0.1", "port_value": tp}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "tp", "cluster": "rabbitmq"}}]}]})
        path = work / "envoy.json"
        path.write_text(json.dumps(cfg))
        envoy = start_envoy(path, admin, [tp, ev], work / "envoy.log")
        ports = {"direct": broker.port, "tcp_proxy": tp, "evmesh": ev}
        paths = list(ports)
        results: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
        for rnd in range(opts.rounds):
            order = paths[rnd % 3:] + paths[:rnd % 3]
            for payload in [int(p) for p in opts.payloads.split(",")]:
                for p in order:
                    q = f"bench.{p}.{payload}".encode()
                    for mode in ("publish", "consume"):
                        c0, t0 = cpu_ns(envoy.pid), time.perf_counter()
                        if mode == "publish":
                            publish_run(ports[p], q, payload, opts.msgs)
                        else:
                            consume_run(ports[p], q, opts.msgs)
                        dt, dc = time.perf_counter() - t0, cpu_ns(envoy.pid) - c0
                        results.setdefault((mode, payload, p), []).append((opts.msgs / dt, dc / 1000 / opts.msgs))
        print(f"{opts.msgs} msgs x {opts.rounds} rounds, medians; Envoy CPU in us/msg")
        print(f"{'mode':8} {'payload':>7} {'path':10} {'msgs/s':>9} {'envoy us/msg':>13} {'x tcp_proxy':>11} {'cpu x tp':>9}")
        for (mode, payload, p), rs in sorted(results.items()):
            rate = statistics.median(r for r, _ in rs)
            cpu = statistics.median(c for _, c in rs)
            base = results[(mode, payload, "tcp_proxy")]
            brate = statistics.median(r for r, _ in base)
            bcpu = statistics.median(c for _, c in base)
            ratio = f"{rate / brate:.2f}" if p != "direct" else "-"
            cratio = f"{cpu / bcpu:.2f}" if p == "evmesh" and bcpu else "-"
            print(f"{mode:8} {payload:7} {p:10} {rate:9.0f} {cpu:13.2f} {ratio:>11} {cratio:>9}")
        stats = envoy.stats()
        print("evmesh protocol errors:", stats.get("evmesh.amqp.bench.c2s.protocol_errors", 0),
              stats.get("evmesh.amqp.bench.s2c.protocol_errors", 0))
    finally:
        if envoy:
            envoy.stop()
        broker.stop()


if __name__ == "__main__":
    main()
