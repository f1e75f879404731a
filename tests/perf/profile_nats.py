"""Where Envoy spends its time on the NATS benchmark's workload: perf (cpu-clock samples) or
callgrind (instruction counts) on the benchmark's Envoy, one path and payload at a time.

  .venv/bin/python tests/perf/profile_nats.py --payload 16              # perf, tcp_proxy then evmesh
  .venv/bin/python tests/perf/profile_nats.py --tool callgrind --msgs 200000

perf attaches to the running Envoy for the measured run only. callgrind runs Envoy under valgrind
with instrumentation off (`--instr-atstart=no`) except during the measured run: its numbers are
user-space instructions (kernel copies are not counted), free of the machine's noise.
Output: the top symbols per path (and Ir per message for callgrind); raw profiles stay in --out.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_nats as bn
import natsload

from evmesh.runtime import envoy as envoy_runtime

PATHS = ("tcp_proxy", "evmesh")


def callgrind_control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def perf_top(data: Path, limit: int) -> str:
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--sort", "dso,sym", "--percent-limit", "0.7"],
        capture_output=True, text=True).stdout
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("#")]
    return "\n".join(lines[:limit])


def callgrind_top(data: Path, limit: int, msgs: int) -> str:
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", str(data)], capture_output=True, text=True).stdout
    lines = out.splitlines()
    start = next((i for i, ln in enumerate(lines) if "file:function" in ln), 0)
    total = next((ln for ln in lines if "PROGRAM TOTALS" in ln), "")
    ir = int(total.split()[0].replace(",", "")) if total.strip() else 0
    return "\n".join([f"{total.strip()}: {ir / msgs:,.0f} Ir per message", *lines[start:start + limit + 2]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tool", choices=("perf", "callgrind"), default="perf")
    ap.add_argument("--payload", type=int, default=16)
    ap.add_argument("--mode", choices=bn.MODES, default="pub")
    ap.add_argument("--msgs", type=int, default=2_000_000, help="messages per path")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="evmesh-profile-")))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {0})
    work = a.out / "work"
    work.mkdir(exist_ok=True)
    wrapper: tuple[str, ...] = ()
    if a.tool == "callgrind":
        # Envoy under valgrind answers its admin API in seconds, not milliseconds: give the runtime's
        # admin requests (readiness, /stats) time enough.
        http_get = envoy_runtime._http_get
        envoy_runtime._http_get = lambda url, timeout=2.0: http_get(url, timeout=max(timeout, 120.0))
        wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={a.out / 'callgrind.out'}")
    bench = bn.start_bench(work, 1, 0, envoy_wrapper=wrapper, ready_timeout=300)
    results = {}
    try:
        for path in PATHS:
            bn.run_throughput(bench, a.mode, a.payload, path, 20_000)  # warm-up, not profiled
            if a.tool == "perf":
                data = a.out / f"perf-{path}.data"
                rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-o", str(data),
                                        "-p", str(bench.envoy.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            else:
                callgrind_control(bench.envoy.pid, "--zero")
                callgrind_control(bench.envoy.pid, "--instr=on")
            run = bn.run_throughput(bench, a.mode, a.payload, path, a.msgs)
            if a.tool == "perf":
                rec.send_signal(signal.SIGINT)
                rec.wait(30)
                results[path] = (run, perf_top(data, a.top))
            else:
                callgrind_control(bench.envoy.pid, "--instr=off")
                callgrind_control(bench.envoy.pid, f"--dump={path}")
                results[path] = (run, None)
            print(f"{path}: {run.msgs:,} msgs, {run.msgs_per_s:,.0f} msgs/s, Envoy {run.envoy_us_per_msg:.3f} us/msg",
                  file=sys.stderr)
    except natsload.LoadError as exc:
        print(f"load error: {exc}", file=sys.stderr)
        raise
    finally:
        bench.stop()
    for path, (run, top) in results.items():
        print(f"\n== {path}: {a.mode} {a.payload} B, {run.msgs:,} msgs")
        if top is None:
            dumps = sorted(a.out.glob("callgrind.out*"))
            dump = next((d for d in dumps if f"Trigger: dump {path}\n" in d.read_text(errors="replace")[:4000]), None)
            top = callgrind_top(dump, a.top, run.msgs) if dump else f"no callgrind dump for {path} in {a.out}"
        print(top)
    print(f"\nraw profiles in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
