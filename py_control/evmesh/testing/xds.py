"""Small xDS resources for tests and benchmarks: a STATIC cluster and a tcp_proxy-only listener."""

from __future__ import annotations

from ..xds.resources import CLUSTER_TYPE, LISTENER_TYPE, TCP_PROXY_TYPE, Resource, resource_from_dict


def xds_cluster(name: str, port: int = 4222, host: str = "127.0.0.1") -> Resource:
    return resource_from_dict(CLUSTER_TYPE, {
        "name": name, "type": "STATIC", "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
    })


def xds_tcp_listener(name: str, port: int, cluster: str, stat_prefix: str | None = None) -> Resource:
    return resource_from_dict(LISTENER_TYPE, {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": TCP_PROXY_TYPE, "stat_prefix": stat_prefix or name, "cluster": cluster}}]}],
    })
