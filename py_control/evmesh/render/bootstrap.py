"""Spec -> Envoy bootstrap (static resources), deterministically: same spec, same bytes."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import yaml

from ..errors import EvmeshError
from ..spec.models import DEFAULT_BROKER_PORT, Address, Broker, Listener, Spec

DYNAMIC_MODULE_FILTER = "type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
STRUCT = "type.googleapis.com/google.protobuf.Struct"
CONNECT_TIMEOUT = "5s"
LOCALHOST = "127.0.0.1"


def default_embedded_address(broker: Broker) -> Address:
    """Where `evmesh render` alone assumes an addressless broker (e.g. 127.0.0.1:4222 for NATS)."""
    return Address(LOCALHOST, DEFAULT_BROKER_PORT[broker.protocol])


def broker_addresses(spec: Spec, embedded: Mapping[str, Address | str] | None = None) -> dict[str, Address]:
    """Every broker's address: its own, else embedded[name], else the protocol's default."""
    out = {}
    for b in spec.brokers:
        if b.address is not None:
            out[b.name] = b.address
        elif embedded and b.name in embedded:
            out[b.name] = _as_address(embedded[b.name])
        else:
            out[b.name] = default_embedded_address(b)
    return out


def defaulted_brokers(spec: Spec, embedded: Mapping[str, Any] | None = None) -> list[Broker]:
    """The addressless brokers that render would place at their protocol's default address."""
    return [b for b in spec.brokers if b.address is None and not (embedded and b.name in embedded)]


def _as_address(value: Address | str) -> Address:
    if isinstance(value, Address):
        return value
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise EvmeshError(f'embedded broker address "{value}" is not host:port')
    return Address(host.strip("[]"), int(port))


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _listener(lst: Listener) -> dict[str, Any]:
    evmesh_filter = {
        "name": f"evmesh.{lst.protocol}",
        "typed_config": {
            "@type": DYNAMIC_MODULE_FILTER,
            "dynamic_module_config": {"name": "evmesh", "do_not_close": True, "metrics_namespace": "evmesh"},
            "filter_name": lst.protocol,
            "filter_config": {"@type": STRUCT, "value": lst.filter_json()},
        },
    }
    tcp_proxy = {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {"@type": TCP_PROXY, "stat_prefix": lst.name, "cluster": lst.broker},
    }
    return {
        "name": lst.name,
        "address": _socket_address(lst.bind, lst.port),
        "filter_chains": [{"filters": [evmesh_filter, tcp_proxy]}],
    }


def _cluster(name: str, address: Address) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if _is_ip(address.host) else "STRICT_DNS",
        "connect_timeout": CONNECT_TIMEOUT,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(address.host, address.port)}}]}],
        },
    }
    if cluster["type"] == "STRICT_DNS":
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    return cluster


def render_bootstrap(
    spec: Spec,
    embedded_addresses: Mapping[str, Address | str] | None = None,
    admin_port: int | None = None,
) -> dict[str, Any]:
    """The Envoy bootstrap for `spec`. Listeners and clusters are sorted by name.

    embedded_addresses: where the brokers without an address run (from `evmesh run`);
    admin_port: overrides spec.admin.port (e.g. a port picked at run time for `port: 0`).
    """
    addresses = broker_addresses(spec, embedded_addresses)
    port = spec.admin.port if admin_port is None else admin_port
    return {
        "admin": {"address": _socket_address(LOCALHOST, port)},
        "static_resources": {
            "listeners": [_listener(lst) for lst in sorted(spec.listeners, key=lambda x: x.name)],
            "clusters": [_cluster(name, addresses[name]) for name in sorted(addresses)],
        },
    }


def render_yaml(
    spec: Spec,
    embedded_addresses: Mapping[str, Address | str] | None = None,
    admin_port: int | None = None,
) -> str:
    """render_bootstrap as YAML text; notes defaulted broker addresses in a leading comment."""
    body = yaml.safe_dump(
        render_bootstrap(spec, embedded_addresses, admin_port),
        sort_keys=False,
        default_flow_style=False,
        width=120,
    )
    notes = [
        f"# broker {b.name} has no address: rendered at {default_embedded_address(b)} "
        f"(`evmesh run` starts an embedded {b.protocol} broker instead)\n"
        for b in defaulted_brokers(spec, embedded_addresses)
    ]
    return "".join(notes) + body


ADS_CLUSTER = "evmesh.xds"  # a dot: no broker name can clash with it
HTTP_PROTOCOL_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
XDS_APIS = {"sotw": "GRPC", "delta": "DELTA_GRPC"}


def render_ads_bootstrap(
    spec: Spec,
    xds_address: Address | str,
    node_id: str,
    node_cluster: str,
    api: str = "sotw",
    admin_port: int | None = None,
) -> dict[str, Any]:
    """A bootstrap managed entirely by an ADS server (`evmesh xds serve`): admin, node identity and
    the ADS cluster (HTTP/2). Listeners and clusters come over ADS (CDS and LDS)."""
    if api not in XDS_APIS:
        raise EvmeshError(f"xDS api must be one of {', '.join(XDS_APIS)}, not {api!r}")
    try:
        address = _as_address(xds_address)
    except EvmeshError:
        raise EvmeshError(f'xDS server address "{xds_address}" is not host:port') from None
    ads = _cluster(ADS_CLUSTER, address)
    ads["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": HTTP_PROTOCOL_OPTIONS,
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    port = spec.admin.port if admin_port is None else admin_port
    return {
        "node": {"id": node_id, "cluster": node_cluster},
        "admin": {"address": _socket_address(LOCALHOST, port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": XDS_APIS[api],
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": ADS_CLUSTER}}],
                "set_node_on_first_message_only": True,
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [ads]},
    }


def render_ads_yaml(spec: Spec, xds_address: Address | str, node_id: str, node_cluster: str,
                    api: str = "sotw", admin_port: int | None = None) -> str:
    """render_ads_bootstrap as YAML text."""
    return yaml.safe_dump(
        render_ads_bootstrap(spec, xds_address, node_id, node_cluster, api, admin_port),
        sort_keys=False, default_flow_style=False, width=120,
    )
