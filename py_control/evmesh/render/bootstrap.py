"""Spec -> Envoy bootstrap (static resources), deterministically: same spec, same bytes."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from ..errors import EvmeshError, SpecError, SpecIssue
from ..spec.kafka_nodes import node_cluster_name, node_listener_name, node_port_problems
from ..spec.loader import HOSTNAME_RE
from ..spec.models import DEFAULT_BROKER_PORT, DEFAULT_KAFKA_NODE_ID, Address, Broker, KafkaNode, Listener, Spec
from .policy import with_policy_reference

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


def default_placement(broker: Broker) -> str:
    """Where render alone puts an addressless broker, in words: "127.0.0.1:9092 as node 1" for kafka."""
    where = str(default_embedded_address(broker))
    return f"{where} as node {DEFAULT_KAFKA_NODE_ID}" if broker.protocol == "kafka" else where


def _discover(address: Address) -> list[tuple[int, str, int]]:
    from ..kafka.discovery import discover_nodes  # a socket client, loaded only when nodes are discovered

    return discover_nodes(address)


def kafka_broker_nodes(
    spec: Spec,
    embedded: Mapping[str, Address | str] | None = None,
    known: Mapping[str, Sequence[KafkaNode]] | None = None,
    discover: Callable[[Address], list[tuple[int, str, int]]] | None = None,
) -> dict[str, tuple[KafkaNode, ...]]:
    """Every kafka broker's nodes (the broker map): the ones written in the spec; else known[name];
    else, for a broker with an address, discovered from it (one Metadata request, up to 5 s); else
    (an addressless broker) one node, id 1, at its embedded or default address."""
    addresses = broker_addresses(spec, embedded)
    discover = discover or _discover
    out: dict[str, tuple[KafkaNode, ...]] = {}
    for i, b in enumerate(spec.brokers):
        if b.protocol != "kafka":
            continue
        if b.nodes is not None:
            out[b.name] = b.nodes
        elif known and b.name in known:
            out[b.name] = tuple(known[b.name])
        elif b.address is not None:
            out[b.name] = _discovered(spec, i, b, discover)
        else:
            out[b.name] = (KafkaNode(DEFAULT_KAFKA_NODE_ID, addresses[b.name]),)
    return out


def discovered_nodes(spec: Spec, index: int, b: Broker,
                     discover: Callable[[Address], list[tuple[int, str, int]]] | None = None) -> tuple[KafkaNode, ...]:
    """The nodes of spec.brokers[index] (which has an address), asked with one Metadata request;
    EvmeshError naming brokers[index].nodes when they cannot be discovered or are unusable."""
    return _discovered(spec, index, b, discover or _discover)


def _discovered(spec: Spec, index: int, b: Broker, discover: Callable[[Address], list[tuple[int, str, int]]]):
    where = f"{spec.source}: brokers[{index}].nodes"
    try:
        found = discover(b.address)
    except EvmeshError as exc:
        raise EvmeshError(f"{where}: cannot discover the nodes of broker {b.name}: {exc} "
                          "(or list them under nodes)") from None
    nodes = []
    for node_id, host, port in found:
        if not (_is_ip(host) or (HOSTNAME_RE.fullmatch(host) and len(host) <= 253)):
            raise EvmeshError(f'{where}: broker {b.name} at {b.address} advertises node {node_id} at invalid host "{host}" '
                              "(list the nodes under nodes)")
        nodes.append(KafkaNode(node_id, Address(host, port)))
    return tuple(sorted(nodes, key=lambda n: n.id))


def check_kafka_node_ports(spec: Spec, nodes: Mapping[str, Sequence[KafkaNode]], admin_port: int | None = None) -> None:
    """Raise SpecError if the node listeners of these nodes need a port over 65535, share a port
    with anything else, or take another listener's or broker's name (the loader checks the same for
    nodes written in the spec; this is for discovered and assumed ones)."""
    port = spec.admin.port if admin_port is None else admin_port
    ids = {name: [n.id for n in ns] for name, ns in nodes.items()}
    problems = node_port_problems(spec.listeners, spec.brokers, port, ids)
    if problems:
        raise SpecError([SpecIssue(spec.source, None, path, message) for path, message in problems])


def listener_ports(spec: Spec, nodes: Mapping[str, Sequence[KafkaNode]] | None = None) -> list[tuple[str, str, int]]:
    """(Envoy listener name, bind, port) of every listener the render has: the spec's, plus one per
    node of each kafka listener's broker (nodes: as from kafka_broker_nodes)."""
    out = []
    for lst in spec.listeners:
        out.append((lst.name, lst.bind, lst.port))
        if lst.protocol == "kafka":
            for n in (nodes or {}).get(lst.broker, ()):
                out.append((node_listener_name(lst.name, n.id), lst.bind, lst.node_port(n.id)))
    return sorted(out)


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


def _config(lst: Listener, node_ids: Sequence[int], policy_source: str | None) -> dict[str, Any]:
    """The listener's filter JSON; with a policy source, its policy keys replaced by a reference."""
    config = lst.filter_json(node_ids)
    if policy_source is None:
        return config
    return with_policy_reference(lst.protocol, config, lst.name, policy_source)


def _listener(lst: Listener, policy_source: str | None = None) -> dict[str, Any]:
    return _envoy_listener(lst.name, lst.bind, lst.port, lst, _config(lst, (), policy_source), lst.broker)


def _kafka_listeners(lst: Listener, nodes: Sequence[KafkaNode], policy_source: str | None = None) -> list[dict[str, Any]]:
    """The bootstrap listener and one listener per broker node, all with the same filter JSON."""
    config = _config(lst, [n.id for n in nodes], policy_source)
    out = [_envoy_listener(lst.name, lst.bind, lst.port, lst, config, lst.broker)]
    for n in nodes:
        out.append(_envoy_listener(node_listener_name(lst.name, n.id), lst.bind, lst.node_port(n.id), lst, config,
                                   node_cluster_name(lst.broker, n.id)))
    return out


def _envoy_listener(name: str, bind: str, port: int, lst: Listener, config: dict[str, Any], cluster: str) -> dict[str, Any]:
    evmesh_filter = {
        "name": f"evmesh.{lst.protocol}",
        "typed_config": {
            "@type": DYNAMIC_MODULE_FILTER,
            "dynamic_module_config": {"name": "evmesh", "do_not_close": True, "metrics_namespace": "evmesh"},
            "filter_name": lst.protocol,
            "filter_config": {"@type": STRUCT, "value": copy.deepcopy(config)},  # no YAML aliases
        },
    }
    tcp_proxy = {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {"@type": TCP_PROXY, "stat_prefix": name, "cluster": cluster},
    }
    out: dict[str, Any] = {
        "name": name,
        "address": _socket_address(bind, port),
        "filter_chains": [{"filters": [evmesh_filter, tcp_proxy]}],
    }
    if lst.protocol == "kafka":
        # The filter holds a Produce request in Envoy's buffer until its verdict
        # (zero copy) while it fits 3/4 of this limit; Envoy's default (1 MiB)
        # would send a client's usual 1 MiB requests down the copying path.
        out["per_connection_buffer_limit_bytes"] = KAFKA_BUFFER_LIMIT
    return out


KAFKA_BUFFER_LIMIT = 16 << 20


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
    kafka_nodes: Mapping[str, Sequence[KafkaNode]] | None = None,
    policy_source: str | None = None,
) -> dict[str, Any]:
    """The Envoy bootstrap for `spec`. Listeners and clusters are sorted by name.

    embedded_addresses: where the brokers without an address run (from `evmesh run`);
    admin_port: overrides spec.admin.port (e.g. a port picked at run time for `port: 0`);
    kafka_nodes: the nodes of kafka brokers whose nodes the spec does not list (from `evmesh run`);
    any other such broker with an address is asked for them (kafka_broker_nodes);
    policy_source: "127.0.0.1:PORT" of a live-policy server (`evmesh xds serve`): every filter JSON then
    names its policy instead of carrying the policy keys (render/policy.py).
    """
    addresses = broker_addresses(spec, embedded_addresses)
    port = spec.admin.port if admin_port is None else admin_port
    nodes = kafka_broker_nodes(spec, embedded_addresses, kafka_nodes)
    check_kafka_node_ports(spec, nodes, port)
    listeners: list[dict[str, Any]] = []
    for lst in spec.listeners:
        if lst.protocol == "kafka":
            listeners.extend(_kafka_listeners(lst, nodes[lst.broker], policy_source))
        else:
            listeners.append(_listener(lst, policy_source))
    clusters = [_cluster(name, addresses[name]) for name in addresses]
    for broker, broker_nodes in nodes.items():
        clusters.extend(_cluster(node_cluster_name(broker, n.id), n.address) for n in broker_nodes)
    return {
        "admin": {"address": _socket_address(LOCALHOST, port)},
        "static_resources": {
            "listeners": sorted(listeners, key=lambda x: x["name"]),
            "clusters": sorted(clusters, key=lambda x: x["name"]),
        },
    }


def render_yaml(
    spec: Spec,
    embedded_addresses: Mapping[str, Address | str] | None = None,
    admin_port: int | None = None,
    kafka_nodes: Mapping[str, Sequence[KafkaNode]] | None = None,
) -> str:
    """render_bootstrap as YAML text; notes defaulted broker addresses in a leading comment."""
    body = yaml.safe_dump(
        render_bootstrap(spec, embedded_addresses, admin_port, kafka_nodes),
        sort_keys=False,
        default_flow_style=False,
        width=120,
    )
    notes = [
        f"# broker {b.name} has no address: rendered at {default_placement(b)} "
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
