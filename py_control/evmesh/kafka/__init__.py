"""Kafka on the control-plane side: finding a cluster's broker nodes (the broker map)."""

from .discovery import ClusterMetadata, KafkaDiscoveryError, discover_nodes, fetch_metadata

__all__ = ["ClusterMetadata", "KafkaDiscoveryError", "discover_nodes", "fetch_metadata"]
