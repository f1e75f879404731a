"""Reproduces the evmesh NATS read-buffer stall with a real client (nats-py).

A publisher that writes faster than Envoy forwards fills Envoy's downstream read buffer in one read
event up to its high watermark (per_connection_buffer_limit_bytes, 1 MiB by default); Envoy then
stops reading. If that buffer ends inside a control line, the filter returns StopIteration and keeps
the whole buffer (not only the partial line), so the buffer never drains, Envoy never reads the rest
of the line, and the connection hangs for good.

  .venv/bin/python tests/perf/repro_read_stall.py        # exit 1 while the bug is there

Same benchmark setup (bench_nats.start_bench); nats-py publishes 300,000 messages of 16 B and
flushes, 3 times per path.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import bench_nats as bn

MSGS = 300_000
TIMEOUT_S = 20.0
# The client runs in a child process: a stalled nats-py connection cannot even be closed (close
# flushes), so the child is killed on timeout.
CLIENT = """
import asyncio, sys, time, nats
async def main(port, msgs):
    nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
    t0 = time.perf_counter()
    for _ in range(msgs):
        await nc.publish("bench.data", b"x" * 16)
    await nc.flush(timeout=60)
    print(f"{time.perf_counter() - t0:.2f}")
    await nc.close()
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def publish(port: int) -> float | None:
    """Seconds for MSGS publishes and a flush, or None when the client hangs."""
    try:
        out = subprocess.run([sys.executable, "-c", CLIENT, str(port), str(MSGS)], capture_output=True, text=True,
                             timeout=TIMEOUT_S, check=True)
    except subprocess.TimeoutExpired:
        return None
    return float(out.stdout.strip())


def main() -> int:
    stalled = 0
    with tempfile.TemporaryDirectory(prefix="evmesh-stall-") as tmp:
        bench = bn.start_bench(Path(tmp), envoy_cpu=1, client_cpu=0)
        try:
            for attempt in range(3):
                for path in ("tcp_proxy", "evmesh"):
                    seconds = publish(bench.ports[path])
                    if seconds is not None:
                        print(f"{path:9} attempt {attempt + 1}: {MSGS:,} msgs in {seconds:.2f} s")
                        continue
                    held = bench.envoy.stats().get(f"tcp.{path}.downstream_cx_rx_bytes_buffered")
                    print(f"{path:9} attempt {attempt + 1}: STALLED (no progress for {TIMEOUT_S:g} s); "
                          f"Envoy holds {held} bytes in the downstream read buffer")
                    stalled += path == "evmesh"
        finally:
            bench.stop()
    return 1 if stalled else 0


if __name__ == "__main__":
    sys.exit(main())
