"""xDS control plane: a per-node snapshot cache (cache.py), spec -> resources (resources.py), the ADS
server, state of the world and Delta (server.py), the live-policy long-poll server (policy.py), and
`evmesh xds serve` (serve.py: spec edits and Kafka node discovery)."""

from .cache import InconsistentSnapshot, Snapshot, SnapshotCache, view_version
from .policy import PolicyServer, PolicySet, PolicyStore
from .resources import CLUSTER_TYPE, LISTENER_TYPE, Resource, resource_to_rendered, spec_resources
from .serve import BackgroundXdsServer, KafkaDiscovery, SpecPublisher, SpecWatcher, serve_spec, snapshot_from_spec
from .server import AdsServer, XdsEvent

__all__ = [
    "CLUSTER_TYPE", "LISTENER_TYPE", "AdsServer", "BackgroundXdsServer", "InconsistentSnapshot", "KafkaDiscovery",
    "PolicyServer", "PolicySet", "PolicyStore", "Resource", "Snapshot", "SnapshotCache", "SpecPublisher",
    "SpecWatcher", "XdsEvent", "resource_to_rendered", "serve_spec", "snapshot_from_spec", "spec_resources",
    "view_version",
]
