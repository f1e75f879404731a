"""A per-node snapshot cache, separate from the transport (after go-control-plane's pkg/cache/v3).

A Snapshot holds, per resource type, a set of named resources and a content version. Before a
snapshot is published it is checked for consistency (unique names, every cluster a listener's
tcp_proxy names exists, unique listener addresses): Envoy's NACK must never be the first check.
The ADS server (server.py) subscribes to a node key and is told when that key's snapshot changes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping

from ..errors import EvmeshError
from .resources import CLUSTER_TYPE, LISTENER_TYPE, Resource, short_type


def view_version(resources: Mapping[str, Resource]) -> str:
    """The version of a set of resources: a hash of their names and content versions."""
    h = hashlib.sha256()
    for name in sorted(resources):
        h.update(name.encode())
        h.update(b"\0")
        h.update(resources[name].version.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


class InconsistentSnapshot(EvmeshError):
    """A snapshot that must not be published; .problems lists every reason."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("inconsistent snapshot: " + "; ".join(self.problems))


class Snapshot:
    """Immutable resources by type: {type_url: {name: Resource}}, with per-type versions."""

    def __init__(self, resources: Mapping[str, Iterable[Resource]], label: str = ""):
        self.label = label
        self._duplicates: list[str] = []
        self.resources: dict[str, dict[str, Resource]] = {}
        for type_url, items in resources.items():
            by_name: dict[str, Resource] = {}
            for res in items:
                if res.type_url != type_url:
                    self._duplicates.append(f"{short_type(type_url)} {res.name}: resource of type {res.type_url}")
                if res.name in by_name:
                    self._duplicates.append(f"{short_type(type_url)}: duplicate name {res.name!r}")
                by_name[res.name] = res
            self.resources[type_url] = dict(sorted(by_name.items()))
        self.versions = {t: view_version(v) for t, v in self.resources.items()}

    def get(self, type_url: str) -> dict[str, Resource]:
        return self.resources.get(type_url, {})

    def version(self, type_url: str) -> str:
        return self.versions.get(type_url, view_version({}))

    def __repr__(self) -> str:
        counts = ", ".join(f"{short_type(t)}={len(v)}@{self.versions[t]}" for t, v in self.resources.items())
        return f"<Snapshot {self.label!r} {counts}>"

    def problems(self) -> list[str]:
        """Everything that makes this snapshot unfit to publish (empty when consistent)."""
        out = list(self._duplicates)
        clusters = self.get(CLUSTER_TYPE)
        addresses: dict[tuple[str, int], str] = {}
        for name, lst in self.get(LISTENER_TYPE).items():
            if not name:
                out.append("LDS: a listener without a name")
            for ref in sorted(lst.depends_on):
                if ref not in clusters:
                    out.append(f"LDS {name}: tcp_proxy cluster {ref!r} is not in the snapshot's clusters")
            sock = lst.message.address.socket_address
            if sock.port_value:
                key = (sock.address, sock.port_value)
                if key in addresses:
                    out.append(f"LDS {name}: address {sock.address}:{sock.port_value} is already used by {addresses[key]}")
                addresses[key] = name
        for name in clusters:
            if not name:
                out.append("CDS: a cluster without a name")
        return out

    def check(self) -> None:
        """Raise InconsistentSnapshot unless the snapshot is consistent."""
        problems = self.problems()
        if problems:
            raise InconsistentSnapshot(problems)


def node_key_of(node, key_by: str = "cluster") -> str:
    """The cache key of an Envoy node: its cluster (the default: every sidecar of a service gets
    the same snapshot) or its id."""
    if key_by == "id":
        return node.id
    return node.cluster or node.id


class SnapshotCache:
    """Snapshots by node key. Thread-safe; watchers are called (in the setter's thread) on change."""

    def __init__(self, key_by: str = "cluster"):
        if key_by not in ("cluster", "id"):
            raise ValueError(f"key_by must be 'cluster' or 'id', not {key_by!r}")
        self.key_by = key_by
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}
        self._watchers: dict[str, list[Callable[[Snapshot | None], None]]] = {}

    def node_key(self, node) -> str:
        return node_key_of(node, self.key_by)

    def set_snapshot(self, key: str, snapshot: Snapshot) -> None:
        """Check `snapshot` (InconsistentSnapshot if it is not fit) and publish it for `key`."""
        snapshot.check()
        with self._lock:
            self._snapshots[key] = snapshot
            watchers = list(self._watchers.get(key, ()))
        for w in watchers:
            w(snapshot)

    def clear_snapshot(self, key: str) -> None:
        with self._lock:
            self._snapshots.pop(key, None)

    def get_snapshot(self, key: str) -> Snapshot | None:
        with self._lock:
            return self._snapshots.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._snapshots)

    def watch(self, key: str, callback: Callable[[Snapshot | None], None]) -> Callable[[], None]:
        """Call `callback(snapshot)` on every set_snapshot for `key`; returns the cancel function."""
        with self._lock:
            self._watchers.setdefault(key, []).append(callback)

        def cancel() -> None:
            with self._lock:
                lst = self._watchers.get(key, [])
                if callback in lst:
                    lst.remove(callback)

        return cancel
