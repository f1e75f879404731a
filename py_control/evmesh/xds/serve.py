"""`evmesh xds serve`: the snapshot of a spec, served over ADS, re-pushed when the spec file changes.

Pipeline: spec file -> load_spec (the same checks and errors as `evmesh validate`) -> render (the
same listeners/clusters as the static bootstrap) -> Snapshot -> consistency check -> cache -> ADS.
A bad edit is reported and not pushed; the last good snapshot stays.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import EvmeshError, SpecError, SpecIssue
from ..render.bootstrap import discovered_nodes, kafka_broker_nodes
from ..render.policy import policy_documents
from ..spec import Spec, load_spec
from ..spec.models import Address, Broker, KafkaNode
from .cache import InconsistentSnapshot, Snapshot, SnapshotCache
from .policy import PolicyServer, PolicySet, PolicyStore
from .resources import CLUSTER_TYPE, LISTENER_TYPE, spec_resources
from .server import AdsServer, XdsEvent

log = logging.getLogger("evmesh.xds")
POLL_INTERVAL_S = 0.25
DEFAULT_NODE_CLUSTER = "evmesh"
DISCOVERY_INTERVAL_S = 2.0
DISCOVERY_TIMEOUT_S = 2.0
SETTLE_TIMEOUT_S = 10.0


def snapshot_from_spec(spec: Spec, label: str = "", embedded: Mapping[str, Address | str] | None = None,
                       kafka_nodes: Mapping[str, Sequence[KafkaNode]] | None = None,
                       policy_source: str | None = None) -> Snapshot:
    """The Snapshot of a spec: the listeners and clusters of its static render. Kafka brokers with an
    address and no nodes in the spec or in kafka_nodes are asked for them (one Metadata request each).
    policy_source: the live-policy server ("127.0.0.1:PORT"); the filter JSONs then name their policy."""
    return Snapshot(spec_resources(spec, embedded, kafka_nodes, policy_source), label=label)


class SpecWatcher:
    """Polls a spec file; poll() returns a newly loaded Spec when the file's bytes changed, else None.
    Raises SpecError (a bad edit) once per changed content."""

    def __init__(self, path: str | Path, native_check: bool = True):
        self.path = Path(path)
        self.native_check = native_check
        self._digest: str | None = None
        self._stat: tuple[int, int] | None = None

    def poll(self) -> Spec | None:
        try:
            st = self.path.stat()
        except OSError as exc:
            if self._stat is None and self._digest is None:
                raise EvmeshError(f"{self.path}: {exc.strerror}") from None
            return None  # e.g. mid-rename by an editor; the next poll sees the new file
        stat = (st.st_mtime_ns, st.st_size)
        if stat == self._stat:
            return None
        self._stat = stat
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return None
        self._digest = digest
        return load_spec(self.path, native_check=self.native_check)


class SpecPublisher:
    """Turns spec versions into published snapshots (and, with live policy, policy documents) for one
    node key, numbering them 1, 2, ...

    With a PolicyStore, the listeners carry policy references and the policy keys go to the store; on
    an edit the policy is published first, then the snapshot. One exception keeps clients off ports
    that have no listener yet: a kafka node that joins enters the `nodes` map only once the snapshot
    with its node listener is ACKed (settle()); a node that leaves is dropped from it at once."""

    def __init__(self, cache: SnapshotCache, key: str, echo: Callable[[str], None],
                 policies: PolicyStore | None = None, policy_source: str | None = None,
                 native_check: bool = False, has_streams: Callable[[], bool] = lambda: False):
        self.cache = cache
        self.key = key
        self.echo = echo
        self.policies = policies
        self.policy_source = policy_source if policies is not None else None
        self.native_check = native_check
        self.has_streams = has_streams
        self._labels = itertools.count(1)
        self.current: Snapshot | None = None
        self.spec: Spec | None = None  # the spec of `current`
        self.pending_policy: PolicySet | None = None  # waits for the LDS ACK of `current` (settle())

    def publish(self, spec: Spec, kafka_nodes: Mapping[str, Sequence[KafkaNode]] | None = None) -> Snapshot | None:
        """Build, check and publish; a problem is echoed and nothing is pushed (returns None).
        kafka_nodes: the discovered nodes of kafka brokers (others are asked now, see snapshot_from_spec)."""
        label = str(next(self._labels))
        try:
            nodes = kafka_broker_nodes(spec, known=kafka_nodes)
            snap = snapshot_from_spec(spec, label, kafka_nodes=nodes, policy_source=self.policy_source)
            snap.check()
            if self.native_check:
                self._native_check(spec, nodes)
        except InconsistentSnapshot as exc:
            for p in exc.problems:
                self.echo(f"{spec.source}: not pushed: {p}")
            return None
        except SpecError as exc:  # node ports of discovered kafka nodes; a policy the module would refuse
            for issue in exc.issues:
                self.echo(f"{issue}; not pushed")
            return None
        except EvmeshError as exc:  # e.g. kafka nodes that cannot be discovered
            self.echo(f"{spec.source}: not pushed: {exc}")
            return None
        policy = ""
        if self.policies is not None:
            final = PolicySet.of(policy_documents(spec, nodes))
            staged = self._staged(final)
            self.policies.set(staged)
            self.pending_policy = final if staged.version != final.version else None
            policy = f"; policy {staged.version}" + (f" (then {final.version} once ACKed)" if self.pending_policy else "")
        self.cache.set_snapshot(self.key, snap)
        self.current, self.spec = snap, spec
        lst = len(snap.get(LISTENER_TYPE))
        cls = len(snap.get(CLUSTER_TYPE))
        self.echo(f"snapshot {label} for node key {self.key}: {lst} listeners, {cls} clusters{policy}")
        return snap

    def _native_check(self, spec: Spec, nodes: Mapping[str, Sequence[KafkaNode]]) -> None:
        """Every listener's merged filter JSON (listener keys + policy keys, discovered nodes included)
        through the module's own parser; SpecError naming the YAML paths otherwise."""
        from ..spec.loader import native_problem_path
        from ..spec.native import checker

        check = checker()
        issues = []
        for i, lst in enumerate(spec.listeners):
            ids = [n.id for n in nodes.get(lst.broker, ())] if lst.protocol == "kafka" else ()
            problem = check.check(lst.protocol, lst.filter_json(ids))
            if problem is not None:
                path, message = native_problem_path(i, lst.protocol, problem)
                issues.append(SpecIssue(spec.source, None, path, message))
        if issues:
            raise SpecError(issues)

    def _staged(self, final: PolicySet) -> PolicySet:
        """`final` with kafka nodes that are not in the published `nodes` map held back, while an Envoy
        is connected that has yet to create their node listeners."""
        old = self.policies.current if self.policies is not None else None
        if old is None or not self.has_streams():
            return final
        docs: dict[str, dict] = {}
        for name, doc in final.policies.items():
            doc = dict(doc)
            if "nodes" in doc:
                had = {(n["id"], n["port"]) for n in old.policies.get(name, {}).get("nodes", [])}
                doc["nodes"] = [n for n in doc["nodes"] if (n["id"], n["port"]) in had]
            docs[name] = doc
        return PolicySet.of(docs)

    async def settle(self, synced: Callable[[str], bool], timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Publish the held-back policy once every Envoy has ACKed the current snapshot (or after
        `timeout`); a newer publish() takes over."""
        pending, snap = self.pending_policy, self.current
        if pending is None or snap is None or self.policies is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not synced(snap.label):
            if self.pending_policy is not pending:
                return
            if loop.time() > deadline:
                self.echo(f"snapshot {snap.label} not ACKed within {timeout:g}s; publishing policy {pending.version} anyway")
                break
            await asyncio.sleep(0.02)
        if self.pending_policy is pending:
            self.pending_policy = None
            self.policies.set(pending)
            self.echo(f"policy {pending.version} for node key {self.key} (kafka nodes of snapshot {snap.label})")


class KafkaDiscovery:
    """The nodes of every kafka broker that has an address and no nodes in the spec, asked with one
    Metadata request per round. A failed round is logged (once per distinct problem) and keeps the last
    known nodes; a broker never discovered yet has none."""

    def __init__(self, echo: Callable[[str], None], discover: Callable[[Address], list] | None = None,
                 timeout: float = DISCOVERY_TIMEOUT_S):
        from ..kafka.discovery import discover_nodes

        self.echo = echo
        self._discover = discover or (lambda address: discover_nodes(address, timeout))
        self.known: dict[tuple[str, Address], tuple[KafkaNode, ...]] = {}
        self.problems: dict[tuple[str, Address], str] = {}  # brokers whose last round failed

    @staticmethod
    def targets(spec: Spec | None) -> list[tuple[int, Broker]]:
        if spec is None:
            return []
        return [(i, b) for i, b in enumerate(spec.brokers)
                if b.protocol == "kafka" and b.nodes is None and b.address is not None]

    def untried(self, spec: Spec) -> bool:
        return any((b.name, b.address) not in self.known and (b.name, b.address) not in self.problems
                   for _, b in self.targets(spec))

    def failed(self) -> bool:
        return bool(self.problems)

    def nodes_for(self, spec: Spec) -> dict[str, tuple[KafkaNode, ...]]:
        """broker name -> its last known nodes (none yet: an empty tuple), for every discovery target."""
        return {b.name: self.known.get((b.name, b.address), ()) for _, b in self.targets(spec)}

    def round(self, spec: Spec, only_untried: bool = False) -> bool:
        """Ask every target (blocking: run it in a thread); True when a broker's node set changed."""
        changed = False
        for i, b in self.targets(spec):
            key = (b.name, b.address)
            if only_untried and (key in self.known or key in self.problems):
                continue
            try:
                nodes = discovered_nodes(spec, i, b, self._discover)
            except EvmeshError as exc:
                problem = str(exc)
                if self.problems.get(key) != problem:
                    kept = self.known.get(key)
                    keeping = (f"keeping nodes {', '.join(str(n.id) for n in kept)}" if kept
                               else "no nodes known yet")
                    self.echo(f"{problem}; {keeping}")
                self.problems[key] = problem
                continue
            if key in self.problems:
                del self.problems[key]
                self.echo(f"broker {b.name}: discovery works again")
            if self.known.get(key) != nodes:
                before = self.known.get(key)
                if before is not None:
                    self.echo(f"broker {b.name}: nodes {_ids(before)} -> {_ids(nodes)}")
                self.known[key] = nodes
                changed = True
        live = {(b.name, b.address) for _, b in self.targets(spec)}
        for key in [k for k in self.known if k not in live]:
            del self.known[key]
        for key in [k for k in self.problems if k not in live]:
            del self.problems[key]
        return changed


def _ids(nodes: Sequence[KafkaNode]) -> str:
    return "[" + ", ".join(str(n.id) for n in nodes) + "]"


async def serve_spec(
    spec_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 18000,
    node_cluster: str = DEFAULT_NODE_CLUSTER,
    key_by: str = "cluster",
    echo: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
    poll_interval: float = POLL_INTERVAL_S,
    native_check: bool = True,
    on_ready: Callable[[int], None] | None = None,
    policy_port: int | None = None,
    discovery_interval: float = DISCOVERY_INTERVAL_S,
    discover: Callable[[Address], list] | None = None,
    on_policy_ready: Callable[[PolicyServer], None] | None = None,
) -> None:
    """Serve `spec_path` to nodes of cluster `node_cluster` (or id, with key_by="id") until `stop`.
    A spec that does not load at start-up raises (SpecError); later bad edits are only reported.

    policy_port: None = no live policy (policies inline in the listeners); 0 = a free port; else the
    port of the live-policy server on 127.0.0.1. Kafka brokers with an address and no nodes in the spec
    are asked for their nodes at start and every `discovery_interval` seconds (after a failed round:
    on the next spec poll); a change of the node set is pushed like an edit."""
    watcher = SpecWatcher(spec_path, native_check)
    spec = watcher.poll()
    assert spec is not None
    cache = SnapshotCache(key_by)
    server = AdsServer(cache)
    store: PolicyStore | None = None
    policy_server: PolicyServer | None = None
    source: str | None = None
    if policy_port is not None:
        store = PolicyStore()
        policy_server = PolicyServer(store)
        try:
            source = f"127.0.0.1:{await policy_server.start(policy_port)}"
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise EvmeshError(f"cannot serve policies on 127.0.0.1:{policy_port}: {reason}") from None
    discovery = KafkaDiscovery(echo, discover, max(0.5, min(DISCOVERY_TIMEOUT_S, discovery_interval)))
    publisher = SpecPublisher(cache, node_cluster, echo, store, source, native_check,
                              has_streams=lambda: server.has_streams(node_cluster))
    stop = stop or asyncio.Event()
    tasks: set[asyncio.Task] = set()

    def publish(new: Spec) -> None:
        if publisher.publish(new, discovery.nodes_for(new)) is not None and publisher.pending_policy is not None:
            task = asyncio.ensure_future(publisher.settle(lambda label: server.synced(node_cluster, label)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    try:
        await asyncio.to_thread(discovery.round, spec)
        if publisher.publish(spec, discovery.nodes_for(spec)) is None:
            raise EvmeshError(f"{spec_path}: the first snapshot cannot be built (see above); nothing to serve")
        bound = await server.start(host, port)
        echo(f"ADS server on {host}:{bound} (state of the world and Delta), serving {spec_path} "
             f"to nodes with {key_by} {node_cluster}")
        if policy_server is not None:
            echo(f"policy server on {source} (GET /v1/policies)")
            if on_policy_ready:
                on_policy_ready(policy_server)
        if on_ready:
            on_ready(bound)

        async def discover_loop() -> None:
            loop = asyncio.get_running_loop()
            last = loop.time()
            while not stop.is_set():
                due = last + (poll_interval if discovery.failed() else discovery_interval)
                try:
                    await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
                    return
                except TimeoutError:
                    pass
                last = loop.time()
                current = publisher.spec
                if not discovery.targets(current):
                    continue
                if await asyncio.to_thread(discovery.round, current) and publisher.spec is current:
                    publish(current)

        discovering = asyncio.ensure_future(discover_loop())
        tasks.add(discovering)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), poll_interval)
                break
            except TimeoutError:
                pass
            try:
                new = watcher.poll()
            except SpecError as exc:
                for issue in exc.issues:
                    echo(str(issue))
                echo(f"{spec_path}: not pushed; still serving snapshot {publisher.current.label if publisher.current else '-'}")
                continue
            except EvmeshError as exc:
                echo(f"{spec_path}: not pushed: {exc}")
                continue
            if new is not None:
                if discovery.untried(new):
                    await asyncio.to_thread(discovery.round, new, True)
                publish(new)
    finally:
        stop.set()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop(0.5)
        if policy_server is not None:
            await policy_server.stop()


class BackgroundXdsServer:
    """An AdsServer on its own event loop thread, for tests and benchmarks.

    set_snapshot() is thread-safe; wait_for(predicate) blocks until an XdsEvent matches."""

    def __init__(self, key_by: str = "cluster"):
        self.cache = SnapshotCache(key_by)
        self.events: list[XdsEvent] = []
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server: AdsServer | None = None
        self.port: int | None = None

    def _record(self, event: XdsEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        ready = threading.Event()
        box: dict = {}

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self.server = AdsServer(self.cache)
            self.server.observe(self._record)
            try:
                box["port"] = loop.run_until_complete(self.server.start(host, port))
            except BaseException as exc:  # reported to start()
                box["error"] = exc
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=main, name="evmesh-xds", daemon=True)
        self._thread.start()
        ready.wait(10)
        if "error" in box:
            raise box["error"]
        self.port = box["port"]
        return self.port

    def call(self, fn: Callable, *args):
        """Run fn(*args) on the server's loop and return its result."""
        assert self._loop is not None
        done = threading.Event()
        box: dict = {}

        def run() -> None:
            try:
                box["value"] = fn(*args)
            except BaseException as exc:
                box["error"] = exc
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def status(self) -> list[dict]:
        return self.call(self.server.status) if self.server else []

    def set_snapshot(self, key: str, snapshot: Snapshot) -> None:
        self.cache.set_snapshot(key, snapshot)

    def wait_for(self, predicate: Callable[[XdsEvent], bool], timeout: float = 30.0, since: int = 0) -> XdsEvent:
        """The first event at index >= since matching predicate; TimeoutError after `timeout`."""
        with self._cond:
            ok = self._cond.wait_for(lambda: any(predicate(e) for e in self.events[since:]), timeout)
            if not ok:
                raise TimeoutError(f"no matching xDS event in {timeout}s; last events: {self.events[-8:]}")
            return next(e for e in self.events[since:] if predicate(e))

    def mark(self) -> int:
        """An index for wait_for(since=...): only events after this call."""
        with self._cond:
            return len(self.events)

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.server.stop(0.5), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None


def run_serve(
    spec_path: str | Path,
    host: str,
    port: int,
    node_cluster: str,
    key_by: str,
    poll_interval: float,
    native_check: bool,
    quiet: bool,
    echo: Callable[[str], None],
    policy_port: int | None = None,
    discovery_interval: float = DISCOVERY_INTERVAL_S,
) -> int:
    """`evmesh xds serve`: serve until SIGINT/SIGTERM (returns 0). Logs go to stderr, one line each."""
    import signal
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await serve_spec(spec_path, host, port, node_cluster, key_by, echo, stop, poll_interval, native_check,
                             policy_port=policy_port, discovery_interval=discovery_interval)
        except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
            raise EvmeshError(f"cannot serve on {host}:{port}: {exc}") from None

    try:
        asyncio.run(main())
    finally:
        log.removeHandler(handler)
    return 0
