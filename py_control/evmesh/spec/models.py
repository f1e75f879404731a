"""Frozen models of a mesh spec. Build them with evmesh.spec.load_spec*, which validates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ADMIN_PORT = 9901
DEFAULT_BIND = "127.0.0.1"
SUPPORTED_PROTOCOLS = ("nats", "amqp", "kafka")  # each with its own listener block of the same name
PLANNED_PROTOCOLS: tuple[str, ...] = ()
DEFAULT_BROKER_PORT = {"nats": 4222, "amqp": 5672, "kafka": 9092}
DEFAULT_KAFKA_NODE_ID = 1  # the one node render assumes for an addressless kafka broker
UNSPECIFIED_BINDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Admin:
    port: int = DEFAULT_ADMIN_PORT  # 0: pick a free port at run time


@dataclass(frozen=True)
class KafkaNode:
    """One Kafka broker node: its node id and the address it serves on (an entry of the broker map)."""

    id: int
    address: Address


@dataclass(frozen=True)
class Broker:
    name: str
    protocol: str
    address: Address | None = None  # None: `evmesh run` starts an embedded broker
    nodes: tuple[KafkaNode, ...] | None = None  # kafka only; None: discovered from the address

    @property
    def embedded(self) -> bool:
        return self.address is None


@dataclass(frozen=True)
class AclRule:
    allow: tuple[str, ...] | None = None  # None: everything allowed; (): nothing allowed
    deny: tuple[str, ...] | None = None  # None and () both deny nothing

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.allow is not None:
            out["allow"] = list(self.allow)
        if self.deny is not None:
            out["deny"] = list(self.deny)
        return out


@dataclass(frozen=True)
class Acl:
    publish: AclRule | None = None
    subscribe: AclRule | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.publish is not None:
            out["publish"] = self.publish.to_json()
        if self.subscribe is not None:
            out["subscribe"] = self.subscribe.to_json()
        return out


@dataclass(frozen=True)
class SubjectGroup:
    name: str
    pattern: str


@dataclass(frozen=True)
class NatsOptions:
    """The `nats:` block of a listener; maps 1:1 to the nats filter JSON (docs/architecture.md)."""

    max_payload: int | None = None
    max_control_line: int | None = None
    acl: Acl | None = None
    subjects: tuple[SubjectGroup, ...] = ()

    def filter_json(self, stat_prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {"stat_prefix": stat_prefix}
        if self.max_control_line is not None:
            out["max_control_line"] = self.max_control_line
        if self.max_payload is not None:
            out["max_payload"] = self.max_payload
        if self.acl is not None:
            out["acl"] = self.acl.to_json()
        if self.subjects:
            out["subjects"] = [{"name": s.name, "pattern": s.pattern} for s in self.subjects]
        return out


@dataclass(frozen=True)
class PublishRule:
    """An AMQP exchange (exact; "" = the default exchange, "*" = any) and a routing-key pattern."""

    exchange: str
    routing_key: str | None = None  # None: absent, the filter's default "#"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exchange": self.exchange}
        if self.routing_key is not None:
            out["routing_key"] = self.routing_key
        return out


@dataclass(frozen=True)
class PublishAclRule:
    allow: tuple[PublishRule, ...] | None = None  # None: everything allowed; (): nothing allowed
    deny: tuple[PublishRule, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.allow is not None:
            out["allow"] = [r.to_json() for r in self.allow]
        if self.deny is not None:
            out["deny"] = [r.to_json() for r in self.deny]
        return out


@dataclass(frozen=True)
class AmqpAcl:
    publish: PublishAclRule | None = None
    consume: AclRule | None = None  # queue-name patterns

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.publish is not None:
            out["publish"] = self.publish.to_json()
        if self.consume is not None:
            out["consume"] = self.consume.to_json()
        return out


@dataclass(frozen=True)
class ExchangeGroup:
    name: str
    exchange: str
    routing_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **PublishRule(self.exchange, self.routing_key).to_json()}


@dataclass(frozen=True)
class QueueGroup:
    name: str
    pattern: str


@dataclass(frozen=True)
class ThrottleRule:
    exchange: str  # "*": every exchange without a rule of its own
    messages_per_second: int | None = None
    bytes_per_second: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exchange": self.exchange}
        if self.messages_per_second is not None:
            out["messages_per_second"] = self.messages_per_second
        if self.bytes_per_second is not None:
            out["bytes_per_second"] = self.bytes_per_second
        return out


@dataclass(frozen=True)
class AmqpOptions:
    """The `amqp:` block of a listener; maps 1:1 to the amqp filter JSON (docs/architecture.md)."""

    max_frame: int | None = None
    max_body_size: int | None = None
    acl: AmqpAcl | None = None
    exchanges: tuple[ExchangeGroup, ...] = ()
    queues: tuple[QueueGroup, ...] = ()
    throttle: tuple[ThrottleRule, ...] = ()

    def filter_json(self, stat_prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {"stat_prefix": stat_prefix}
        if self.max_frame is not None:
            out["max_frame"] = self.max_frame
        if self.max_body_size is not None:
            out["max_body_size"] = self.max_body_size
        if self.acl is not None:
            out["acl"] = self.acl.to_json()
        if self.exchanges:
            out["exchanges"] = [g.to_json() for g in self.exchanges]
        if self.queues:
            out["queues"] = [{"name": g.name, "pattern": g.pattern} for g in self.queues]
        if self.throttle:
            out["throttle"] = [t.to_json() for t in self.throttle]
        return out


MIN_ACKS_JSON = {"all": -1, -1: -1, 1: 1, 0: 0}  # spec value -> the integer the filter gets


@dataclass(frozen=True)
class KafkaAcl:
    produce: AclRule | None = None  # topic patterns
    consume: AclRule | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.produce is not None:
            out["produce"] = self.produce.to_json()
        if self.consume is not None:
            out["consume"] = self.consume.to_json()
        return out


@dataclass(frozen=True)
class TopicGroup:
    name: str
    pattern: str


@dataclass(frozen=True)
class DurabilityRule:
    topic: str  # a topic pattern
    min_acks: str | int  # "all", -1, 1 or 0 as written in the spec

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "min_acks": MIN_ACKS_JSON[self.min_acks]}


@dataclass(frozen=True)
class QuotaRule:
    topic: str  # a topic pattern; limits apply per client id
    records_per_second: int | None = None
    bytes_per_second: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"topic": self.topic}
        if self.records_per_second is not None:
            out["records_per_second"] = self.records_per_second
        if self.bytes_per_second is not None:
            out["bytes_per_second"] = self.bytes_per_second
        return out


@dataclass(frozen=True)
class KafkaOptions:
    """The `kafka:` block of a listener; maps to the kafka filter JSON (docs/architecture.md) plus the
    node ports, which are Envoy listeners of their own (one per broker node)."""

    node_ports: tuple[tuple[int, int], ...] = ()  # (node id, port) as written; the rest default
    max_frame: int | None = None
    acl: KafkaAcl | None = None
    topics: tuple[TopicGroup, ...] = ()
    durability: tuple[DurabilityRule, ...] = ()
    max_batch_bytes: int | None = None
    quotas: tuple[QuotaRule, ...] = ()

    def node_port(self, bootstrap_port: int, node_id: int) -> int:
        """The listener port of broker node `node_id`: node_ports[id], else bootstrap port + 1 + id
        (may exceed 65535; the loader and the renderer report that)."""
        return dict(self.node_ports).get(node_id, bootstrap_port + 1 + node_id)

    def filter_json(self, stat_prefix: str, advertised_host: str, bootstrap_port: int,
                    node_ids: Iterable[int]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stat_prefix": stat_prefix,
            "advertised_host": advertised_host,
            "bootstrap_port": bootstrap_port,
            "nodes": [{"id": n, "port": self.node_port(bootstrap_port, n)} for n in sorted(node_ids)],
        }
        if self.max_frame is not None:
            out["max_frame"] = self.max_frame
        if self.acl is not None:
            out["acl"] = self.acl.to_json()
        if self.topics:
            out["topics"] = [{"name": g.name, "pattern": g.pattern} for g in self.topics]
        if self.durability:
            out["durability"] = [d.to_json() for d in self.durability]
        if self.max_batch_bytes is not None:
            out["max_batch_bytes"] = self.max_batch_bytes
        if self.quotas:
            out["quotas"] = [q.to_json() for q in self.quotas]
        return out


@dataclass(frozen=True)
class Listener:
    name: str
    protocol: str
    port: int
    broker: str
    bind: str = DEFAULT_BIND
    nats: NatsOptions | None = None
    amqp: AmqpOptions | None = None
    kafka: KafkaOptions | None = None

    @property
    def advertised_host(self) -> str:
        """The host a kafka listener announces to clients: its bind address, 127.0.0.1 for 0.0.0.0 / ::."""
        return DEFAULT_BIND if self.bind in UNSPECIFIED_BINDS else self.bind

    def node_port(self, node_id: int) -> int:
        """The port of this kafka listener's node listener for broker node `node_id`."""
        return (self.kafka or KafkaOptions()).node_port(self.port, node_id)

    def filter_json(self, node_ids: Iterable[int] = ()) -> dict[str, Any]:
        """The JSON config of this listener's evmesh filter (filter_name = protocol).
        node_ids: kafka only, the broker's node ids (the broker map the filter rewrites Metadata to)."""
        if self.protocol == "nats":
            return (self.nats or NatsOptions()).filter_json(self.name)
        if self.protocol == "amqp":
            return (self.amqp or AmqpOptions()).filter_json(self.name)
        if self.protocol == "kafka":
            return (self.kafka or KafkaOptions()).filter_json(self.name, self.advertised_host, self.port, node_ids)
        raise ValueError(f"no filter config for protocol {self.protocol!r}")


@dataclass(frozen=True)
class Spec:
    version: int
    admin: Admin
    brokers: tuple[Broker, ...]
    listeners: tuple[Listener, ...]
    source: str = field(default="<spec>", compare=False)

    def broker(self, name: str) -> Broker:
        for b in self.brokers:
            if b.name == name:
                return b
        raise KeyError(name)
