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
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import EvmeshError, SpecError
from ..spec import Spec, load_spec
from ..spec.models import Address, KafkaNode
from .cache import InconsistentSnapshot, Snapshot, SnapshotCache
from .resources import spec_resources
from .server import AdsServer, XdsEvent

log = logging.getLogger("evmesh.xds")
POLL_INTERVAL_S = 0.25
DEFAULT_NODE_CLUSTER = "evmesh"


def snapshot_from_spec(spec: Spec, label: str = "", embedded: Mapping[str, Address | str] | None = None,
                       kafka_nodes: Mapping[str, Sequence[KafkaNode]] | None = None) -> Snapshot:
    """The Snapshot of a spec: the listeners and clusters of its static render. Kafka brokers with an
    address and no nodes in the spec are asked for them (one Metadata request each, on every edit)."""
    return Snapshot(spec_resources(spec, embedded, kafka_nodes), label=label)


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
    """Turns spec versions into published snapshots for one node key, numbering them 1, 2, ..."""

    def __init__(self, cache: SnapshotCache, key: str, echo: Callable[[str], None]):
        self.cache = cache
        self.key = key
        self.echo = echo
        self._labels = itertools.count(1)
        self.current: Snapshot | None = None

    def publish(self, spec: Spec) -> Snapshot | None:
        """Build, check and publish; a problem is echoed and nothing is pushed (returns None)."""
        label = str(next(self._labels))
        try:
            snap = snapshot_from_spec(spec, label)
            self.cache.set_snapshot(self.key, snap)
        except InconsistentSnapshot as exc:
            for p in exc.problems:
                self.echo(f"{spec.source}: not pushed: {p}")
            return None
        except SpecError as exc:  # e.g. node ports of discovered kafka nodes
            for issue in exc.issues:
                self.echo(f"{issue}; not pushed")
            return None
        except EvmeshError as exc:  # e.g. kafka nodes that cannot be discovered
            self.echo(f"{spec.source}: not pushed: {exc}")
            return None
        self.current = snap
        lst = len(snap.get("type.googleapis.com/envoy.config.listener.v3.Listener"))
        cls = len(snap.get("type.googleapis.com/envoy.config.cluster.v3.Cluster"))
        self.echo(f"snapshot {label} for node key {self.key}: {lst} listeners, {cls} clusters")
        return snap


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
) -> None:
    """Serve `spec_path` to nodes of cluster `node_cluster` (or id, with key_by="id") until `stop`.
    A spec that does not load at start-up raises (SpecError); later bad edits are only reported."""
    watcher = SpecWatcher(spec_path, native_check)
    spec = watcher.poll()
    assert spec is not None
    cache = SnapshotCache(key_by)
    publisher = SpecPublisher(cache, node_cluster, echo)
    if publisher.publish(spec) is None:
        raise EvmeshError(f"{spec_path}: the first snapshot cannot be built (see above); nothing to serve")
    server = AdsServer(cache)
    bound = await server.start(host, port)
    echo(f"ADS server on {host}:{bound} (state of the world and Delta), serving {spec_path} "
         f"to nodes with {key_by} {node_cluster}")
    if on_ready:
        on_ready(bound)
    stop = stop or asyncio.Event()
    try:
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
                publisher.publish(new)
    finally:
        await server.stop(0.5)


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
            await serve_spec(spec_path, host, port, node_cluster, key_by, echo, stop, poll_interval, native_check)
        except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
            raise EvmeshError(f"cannot serve on {host}:{port}: {exc}") from None

    try:
        asyncio.run(main())
    finally:
        log.removeHandler(handler)
    return 0
