"""Frozen models of a mesh spec. Build them with evmesh.spec.load_spec*, which validates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_ADMIN_PORT = 9901
DEFAULT_BIND = "127.0.0.1"
SUPPORTED_PROTOCOLS = ("nats", "amqp")  # kafka slots in here, with its own listener block
PLANNED_PROTOCOLS = ("kafka",)
DEFAULT_BROKER_PORT = {"nats": 4222, "amqp": 5672}


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
class Broker:
    name: str
    protocol: str
    address: Address | None = None  # None: `evmesh run` starts an embedded broker

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


@dataclass(frozen=True)
class Listener:
    name: str
    protocol: str
    port: int
    broker: str
    bind: str = DEFAULT_BIND
    nats: NatsOptions | None = None
    amqp: AmqpOptions | None = None

    def filter_json(self) -> dict[str, Any]:
        """The JSON config of this listener's evmesh filter (filter_name = protocol)."""
        if self.protocol == "nats":
            return (self.nats or NatsOptions()).filter_json(self.name)
        if self.protocol == "amqp":
            return (self.amqp or AmqpOptions()).filter_json(self.name)
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
