"""Live policy: which keys of a filter JSON are policy, and the policy documents of a spec.

With live policy (`evmesh xds serve --policy-port`), a listener's filter JSON keeps only what is
structural and names its policy ({"policy": {"name": <spec listener name>, "source": "127.0.0.1:P"}});
the policy keys travel in a policy document the module long-polls and applies to open connections
(docs/xds.md). A policy-only edit then changes no Listener resource, and nothing drains.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ..spec.models import KafkaNode, Spec

POLICY_KEYS: dict[str, tuple[str, ...]] = {
    "nats": ("acl", "max_payload"),
    "amqp": ("acl", "max_body_size", "throttle"),
    "kafka": ("acl", "durability", "max_batch_bytes", "quotas", "nodes"),
}


def split_policy(protocol: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the filter JSON without its policy keys, the policy keys present)."""
    keys = POLICY_KEYS[protocol]
    structural = {k: copy.deepcopy(v) for k, v in config.items() if k not in keys}
    policy = {k: copy.deepcopy(config[k]) for k in keys if k in config}
    return structural, policy


def with_policy_reference(protocol: str, config: Mapping[str, Any], name: str, source: str) -> dict[str, Any]:
    """The filter JSON a listener carries under live policy: structural keys + the policy reference."""
    structural, _ = split_policy(protocol, config)
    structural["policy"] = {"name": name, "source": source}
    return structural


def policy_documents(spec: Spec, nodes: Mapping[str, Sequence[KafkaNode]]) -> dict[str, dict[str, Any]]:
    """{spec listener name: its policy document} (kafka: `nodes` is the node id -> port map of the
    broker's nodes as given)."""
    out: dict[str, dict[str, Any]] = {}
    for lst in spec.listeners:
        ids = [n.id for n in nodes.get(lst.broker, ())] if lst.protocol == "kafka" else ()
        out[lst.name] = split_policy(lst.protocol, lst.filter_json(ids))[1]
    return dict(sorted(out.items()))
