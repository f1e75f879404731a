"""Spec -> xDS resources (Listener, Cluster protos), from the same dicts as the static render.

render.bootstrap renders the listeners and clusters once; this module turns those dicts into protobuf
messages. The dynamic-module filter config has no Python message class in xds-protos 1.85.0, so every
`typed_config` whose type the descriptor pool does not know is sent as an `xds.type.v3.TypedStruct`
{type_url, value: Struct}, which Envoy converts into the real message on its side.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401 - registers the type
from google.protobuf import any_pb2, json_format, struct_pb2, symbol_database  # noqa: F401
from google.protobuf.message import Message
from xds.type.v3 import typed_struct_pb2  # noqa: F401 - registers the type

from ..render.bootstrap import render_bootstrap
from ..spec.models import Address, KafkaNode, Spec

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
TYPED_STRUCT = "type.googleapis.com/xds.type.v3.TypedStruct"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
SHORT_NAMES = {LISTENER_TYPE: "LDS", CLUSTER_TYPE: "CDS"}
_MESSAGE_CLASS = {LISTENER_TYPE: listener_pb2.Listener, CLUSTER_TYPE: cluster_pb2.Cluster}
_POOL = symbol_database.Default().pool


def short_type(type_url: str) -> str:
    """CDS/LDS for the types we serve, else the message name."""
    return SHORT_NAMES.get(type_url, type_url.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Resource:
    """One xDS resource: its message, the packed Any sent on the wire, and a content version."""

    name: str
    type_url: str
    message: Message = field(compare=False, repr=False)
    packed: any_pb2.Any = field(compare=False, repr=False)
    version: str = ""
    depends_on: frozenset[str] = frozenset()  # clusters a listener's tcp_proxy refers to

    @staticmethod
    def of(message: Message, type_url: str | None = None) -> Resource:
        type_url = type_url or f"type.googleapis.com/{message.DESCRIPTOR.full_name}"
        packed = any_pb2.Any()
        packed.Pack(message, deterministic=True)
        version = hashlib.sha256(packed.value).hexdigest()[:16]
        deps = frozenset(listener_cluster_refs(message)) if type_url == LISTENER_TYPE else frozenset()
        return Resource(message.name, type_url, message, packed, version, deps)


def _known_type(type_url: str) -> bool:
    try:
        _POOL.FindMessageTypeByName(type_url.rsplit("/", 1)[-1])
        return True
    except KeyError:
        return False


def to_wire_dict(obj: Any) -> Any:
    """A copy of a rendered dict in which every typed_config of a type unknown to Python (the
    dynamic-module filter) is wrapped as a TypedStruct. The wrapped value is JSON and left as is."""
    if isinstance(obj, list):
        return [to_wire_dict(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    type_url = obj.get("@type")
    if type_url is not None and not _known_type(type_url):
        value = {k: v for k, v in obj.items() if k != "@type"}
        return {"@type": TYPED_STRUCT, "type_url": type_url, "value": value}
    return {k: to_wire_dict(v) for k, v in obj.items()}


def from_wire_dict(obj: Any) -> Any:
    """The inverse of to_wire_dict: TypedStructs unwrapped back into rendered dicts."""
    if isinstance(obj, list):
        return [from_wire_dict(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if obj.get("@type") == TYPED_STRUCT:
        return {"@type": obj["type_url"], **obj.get("value", {})}
    return {k: from_wire_dict(v) for k, v in obj.items()}


def listener_cluster_refs(listener: Message) -> list[str]:
    """Clusters named by the tcp_proxy filters of a Listener (plain or weighted)."""
    out: list[str] = []
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    for chain in chains:
        for f in chain.filters:
            if f.typed_config.type_url != TCP_PROXY_TYPE:
                continue
            proxy = tcp_proxy_pb2.TcpProxy()
            f.typed_config.Unpack(proxy)
            if proxy.cluster:
                out.append(proxy.cluster)
            out.extend(c.name for c in proxy.weighted_clusters.clusters)
    return out


# Same rendered dict -> same Resource: a spec edit re-parses only what changed.
_MEMO: dict[tuple[str, str], Resource] = {}
_MEMO_MAX = 20000


def resource_from_dict(type_url: str, rendered: Mapping[str, Any]) -> Resource:
    """A Resource from a rendered (static-bootstrap shaped) listener or cluster dict."""
    key = (type_url, json.dumps(rendered, sort_keys=True, separators=(",", ":")))
    hit = _MEMO.get(key)
    if hit is not None:
        return hit
    message = json_format.ParseDict(to_wire_dict(dict(rendered)), _MESSAGE_CLASS[type_url]())
    res = Resource.of(message, type_url)
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = res
    return res


def resources_from_rendered(listeners: Iterable[Mapping[str, Any]], clusters: Iterable[Mapping[str, Any]]):
    """{type_url: [Resource]} from lists of rendered listener and cluster dicts."""
    return {
        LISTENER_TYPE: [resource_from_dict(LISTENER_TYPE, x) for x in listeners],
        CLUSTER_TYPE: [resource_from_dict(CLUSTER_TYPE, x) for x in clusters],
    }


def spec_resources(
    spec: Spec,
    embedded: Mapping[str, Address | str] | None = None,
    kafka_nodes: Mapping[str, Sequence[KafkaNode]] | None = None,
    policy_source: str | None = None,
):
    """{type_url: [Resource]}: exactly the listeners and clusters of the static render of `spec`
    (kafka node listeners and clusters included; nodes as render_bootstrap finds them). With
    policy_source, the filter JSONs name their live policy instead of carrying it (render/policy.py)."""
    static = render_bootstrap(spec, embedded, kafka_nodes=kafka_nodes, policy_source=policy_source)["static_resources"]
    return resources_from_rendered(static["listeners"], static["clusters"])


def resource_to_rendered(res: Resource) -> dict[str, Any]:
    """A resource back as a rendered dict (TypedStructs unwrapped), for comparisons and debugging."""
    d = json_format.MessageToDict(res.message, preserving_proto_field_name=True)
    return from_wire_dict(d)
