"""Load and validate a mesh spec (YAML) into frozen models.

The YAML is composed into nodes (not loaded into plain data) so that every problem can name its
YAML path and line: `spec.yaml:14: listeners[0].nats.acl.publish.allow[1]: invalid subject ...`.
All problems are collected, then raised together as one SpecError.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import EvmeshError, NativeLibraryMissing, SpecError, SpecIssue
from .kafka_nodes import node_port_problems
from .kafka_topics import kafka_topic_pattern_problem
from .models import (
    DEFAULT_ADMIN_PORT,
    DEFAULT_BIND,
    PLANNED_PROTOCOLS,
    SUPPORTED_PROTOCOLS,
    Acl,
    AclRule,
    Address,
    Admin,
    AmqpAcl,
    AmqpOptions,
    Broker,
    DurabilityRule,
    ExchangeGroup,
    KafkaAcl,
    KafkaNode,
    KafkaOptions,
    Listener,
    NatsOptions,
    PublishAclRule,
    PublishRule,
    QueueGroup,
    QuotaRule,
    Spec,
    SubjectGroup,
    ThrottleRule,
    TopicGroup,
)
from .subjects import subject_pattern_problem
from .topics import short_string_problem, topic_pattern_problem

SPEC_VERSION = 1
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
MAX_SUBJECT_GROUPS = 64
NATS_LIMITS = {"max_payload": (1, 67108864), "max_control_line": (32, 1048576)}
AMQP_LIMITS = {"max_frame": (4096, 16777216), "max_body_size": (1, 2**31)}
AMQP_THROTTLE_LIMITS = {"messages_per_second": (1, 10_000_000), "bytes_per_second": (1, 2**40)}
MAX_AMQP_GROUPS = 64  # exchange groups, queue groups, throttle rules (each)
MAX_AMQP_ACL_RULES = 1024  # per allow/deny list
KAFKA_LIMITS = {"max_frame": (1024, 2**30), "max_batch_bytes": (1, 2**30)}
KAFKA_QUOTA_LIMITS = {"records_per_second": (1, 10_000_000), "bytes_per_second": (1, 2**40)}
MAX_KAFKA_GROUPS = 64  # topic groups, durability rules, quotas (each)
MAX_KAFKA_ACL_PATTERNS = 1024  # per allow/deny list
MAX_KAFKA_NODE_ID = 2**31 - 1
MIN_ACKS = ("all", -1, 1, 0)

_TAG_NAMES = {
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:str": "a string",
}


def _describe(node: Node | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _TAG_NAMES.get(node.tag, "a value")


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _idx(path: str, i: int) -> str:
    return f"{path}[{i}]"


def _hint(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


class _Walker:
    """Typed access to YAML nodes; records issues and the line of every visited path."""

    def __init__(self, source: str):
        self.source = source
        self.issues: list[SpecIssue] = []
        self.lines: dict[str, int] = {}

    # -- bookkeeping ---------------------------------------------------------------------------
    def error(self, node: Node | None, path: str, message: str) -> None:
        line, column = (node.start_mark.line + 1, node.start_mark.column) if node is not None else (None, None)
        self.issues.append(SpecIssue(self.source, line, path, message, column))

    def visit(self, node: Node, path: str) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)

    def line_of(self, path: str) -> int | None:
        """The line of `path`, or of its nearest visited ancestor."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        return self.lines.get("")

    def has_issues_under(self, path: str) -> bool:
        return any(i.path == path or i.path.startswith((path + ".", path + "[")) for i in self.issues)

    # -- typed readers (each returns None after recording an issue) -----------------------------
    def mapping(self, node: Node, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Node] | None:
        self.visit(node, path)
        if not isinstance(node, MappingNode):
            self.error(node, path, f"expected a mapping, got {_describe(node)}")
            return None
        allowed = required + optional
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, ScalarNode) and key_node.tag == "tag:yaml.org,2002:str"):
                self.error(key_node, path, f"keys must be strings, got {_describe(key_node)}")
                continue
            key = key_node.value
            kpath = _key(path, key)
            if key in out:
                self.error(key_node, kpath, "duplicate key")
            elif key not in allowed:
                self.error(key_node, kpath, "unknown key" + _hint(key, allowed))
            else:
                out[key] = value_node
                self.visit(value_node, kpath)
        for key in required:
            if key not in out:
                self.error(node, path, f'missing required key "{key}"')
        return out

    def sequence(self, node: Node, path: str) -> list[Node] | None:
        self.visit(node, path)
        if not isinstance(node, SequenceNode):
            self.error(node, path, f"expected a list, got {_describe(node)}")
            return None
        for i, item in enumerate(node.value):
            self.visit(item, _idx(path, i))
        return list(node.value)

    def _scalar(self, node: Node, path: str, tag: str) -> Any:
        self.visit(node, path)
        if not (isinstance(node, ScalarNode) and node.tag == tag):
            self.error(node, path, f"expected {_TAG_NAMES[tag]}, got {_describe(node)}")
            return None
        if tag == "tag:yaml.org,2002:str":
            return node.value  # a plain or quoted string scalar is its own value
        return SafeConstructor().construct_object(node)

    def integer(self, node: Node, path: str, lo: int, hi: int) -> int | None:
        value = self._scalar(node, path, "tag:yaml.org,2002:int")
        if value is None:
            return None
        if not lo <= value <= hi:
            self.error(node, path, f"{value} is out of range {lo}..{hi}")
            return None
        return value

    def string(self, node: Node, path: str) -> str | None:
        value = self._scalar(node, path, "tag:yaml.org,2002:str")
        if value == "":
            self.error(node, path, "must not be empty")
            return None
        return value

    def name(self, node: Node, path: str) -> str | None:
        value = self.string(node, path)
        if value is not None and not NAME_RE.fullmatch(value):
            self.error(node, path, f'invalid name "{value}": use 1-64 of A-Z a-z 0-9 _ -')
            return None
        return value

    def string_list(self, node: Node, path: str, check: Callable[[Node, str, str], bool]) -> tuple[str, ...] | None:
        items = self.sequence(node, path)
        if items is None:
            return None
        out = []
        for i, item in enumerate(items):
            value = self.string(item, _idx(path, i))
            if value is not None and check(item, _idx(path, i), value):
                out.append(value)
        return tuple(out) if len(out) == len(items) else None


# -- the spec ----------------------------------------------------------------------------------


def _protocol(w: _Walker, node: Node, path: str) -> str | None:
    value = w.string(node, path)
    if value is None:
        return None
    if value in SUPPORTED_PROTOCOLS:
        return value
    supported = ", ".join(SUPPORTED_PROTOCOLS)
    if value in PLANNED_PROTOCOLS:
        w.error(node, path, f'protocol "{value}" is not supported yet (supported: {supported})')
    else:
        w.error(node, path, f'unknown protocol "{value}" (supported: {supported})')
    return None


def _host_problem(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    return None if HOSTNAME_RE.fullmatch(host) and len(host) <= 253 else f'invalid host "{host}"'


def _address(w: _Walker, node: Node, path: str) -> Address | None:
    text = w.string(node, path)
    if text is None:
        return None
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text)
    if not m:
        w.error(node, path, f'expected "host:port", got "{text}"')
        return None
    host, port_text = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    problem = _host_problem(host)
    if problem:
        w.error(node, path, problem)
        return None
    port = int(port_text)
    if not 1 <= port <= 65535:
        w.error(node, path, f"port {port} is out of range 1..65535")
        return None
    return Address(host, port)


def _bind(w: _Walker, node: Node, path: str) -> str | None:
    text = w.string(node, path)
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        w.error(node, path, f'expected an IP address, got "{text}"')
        return None


def _subject_patterns(w: _Walker, node: Node, path: str) -> tuple[str, ...] | None:
    def check(item: Node, ipath: str, value: str) -> bool:
        problem = subject_pattern_problem(value)
        if problem:
            w.error(item, ipath, f'invalid subject pattern "{value}": {problem}')
        return problem is None

    return w.string_list(node, path, check)


def _acl_rule(w: _Walker, node: Node, path: str) -> AclRule | None:
    fields = w.mapping(node, path, (), ("allow", "deny"))
    if fields is None:
        return None
    allow = _subject_patterns(w, fields["allow"], _key(path, "allow")) if "allow" in fields else None
    deny = _subject_patterns(w, fields["deny"], _key(path, "deny")) if "deny" in fields else None
    return AclRule(allow=allow, deny=deny)


def _acl(w: _Walker, node: Node, path: str) -> Acl | None:
    fields = w.mapping(node, path, (), ("publish", "subscribe"))
    if fields is None:
        return None
    rules = {k: _acl_rule(w, v, _key(path, k)) for k, v in fields.items()}
    return Acl(**rules)


def _subject_groups(w: _Walker, node: Node, path: str) -> tuple[SubjectGroup, ...]:
    items = w.sequence(node, path)
    if items is None:
        return ()
    if len(items) > MAX_SUBJECT_GROUPS:
        w.error(node, path, f"at most {MAX_SUBJECT_GROUPS} subject groups, got {len(items)}")
    groups: list[SubjectGroup] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        fields = w.mapping(item, ipath, ("name", "pattern"))
        if fields is None:
            continue
        name = w.name(fields["name"], _key(ipath, "name")) if "name" in fields else None
        if name == "other":
            w.error(fields["name"], _key(ipath, "name"), '"other" is reserved for subjects that match no group')
            name = None
        elif name is not None and name in seen:
            w.error(fields["name"], _key(ipath, "name"), f'duplicate subject group "{name}" (also {seen[name]})')
            name = None
        elif name is not None:
            seen[name] = ipath
        pattern = _subject_patterns_one(w, fields.get("pattern"), _key(ipath, "pattern"))
        if name is not None and pattern is not None:
            groups.append(SubjectGroup(name, pattern))
    return tuple(groups)


def _subject_patterns_one(w: _Walker, node: Node | None, path: str) -> str | None:
    if node is None:
        return None
    value = w.string(node, path)
    if value is None:
        return None
    problem = subject_pattern_problem(value)
    if problem:
        w.error(node, path, f'invalid subject pattern "{value}": {problem}')
        return None
    return value


def _nats_options(w: _Walker, node: Node, path: str) -> NatsOptions | None:
    fields = w.mapping(node, path, (), ("max_payload", "max_control_line", "acl", "subjects"))
    if fields is None:
        return None
    limits = {k: w.integer(fields[k], _key(path, k), *NATS_LIMITS[k]) for k in NATS_LIMITS if k in fields}
    acl = _acl(w, fields["acl"], _key(path, "acl")) if "acl" in fields else None
    subjects = _subject_groups(w, fields["subjects"], _key(path, "subjects")) if "subjects" in fields else ()
    return NatsOptions(acl=acl, subjects=subjects, **limits)


# -- amqp ----------------------------------------------------------------------------------------


def _short_string(w: _Walker, node: Node, path: str) -> str | None:
    """A string that may be empty (the default exchange is ""), at most 255 bytes."""
    value = w._scalar(node, path, "tag:yaml.org,2002:str")
    if value is None:
        return None
    problem = short_string_problem(value)
    if problem:
        w.error(node, path, problem)
        return None
    return value


def _topic_pattern(w: _Walker, node: Node, path: str) -> str | None:
    value = w._scalar(node, path, "tag:yaml.org,2002:str")
    if value is None:
        return None
    problem = topic_pattern_problem(value)
    if problem:
        w.error(node, path, f'invalid pattern "{value}": {problem}')
        return None
    return value


def _bounded_list(w: _Walker, node: Node, path: str, limit: int, what: str) -> list[Node] | None:
    items = w.sequence(node, path)
    if items is not None and len(items) > limit:
        w.error(node, path, f"at most {limit} {what}, got {len(items)}")
    return items


def _publish_rule(w: _Walker, node: Node, path: str) -> PublishRule | None:
    fields = w.mapping(node, path, ("exchange",), ("routing_key",))
    if fields is None:
        return None
    exchange = _short_string(w, fields["exchange"], _key(path, "exchange")) if "exchange" in fields else None
    rk = _topic_pattern(w, fields["routing_key"], _key(path, "routing_key")) if "routing_key" in fields else None
    if exchange is None or ("routing_key" in fields and rk is None):
        return None
    return PublishRule(exchange, rk)


def _publish_rules(w: _Walker, node: Node, path: str) -> tuple[PublishRule, ...] | None:
    items = _bounded_list(w, node, path, MAX_AMQP_ACL_RULES, "rules")
    if items is None:
        return None
    rules = [_publish_rule(w, item, _idx(path, i)) for i, item in enumerate(items)]
    return None if None in rules or len(items) > MAX_AMQP_ACL_RULES else tuple(rules)


def _queue_patterns(w: _Walker, node: Node, path: str) -> tuple[str, ...] | None:
    items = _bounded_list(w, node, path, MAX_AMQP_ACL_RULES, "patterns")
    if items is None:
        return None
    patterns = [_topic_pattern(w, item, _idx(path, i)) for i, item in enumerate(items)]
    return None if None in patterns or len(items) > MAX_AMQP_ACL_RULES else tuple(patterns)


def _amqp_acl(w: _Walker, node: Node, path: str) -> AmqpAcl | None:
    fields = w.mapping(node, path, (), ("publish", "consume"))
    if fields is None:
        return None
    readers = {"publish": (_publish_rules, PublishAclRule), "consume": (_queue_patterns, AclRule)}
    parts: dict[str, Any] = {}
    for key, (read, model) in readers.items():
        if key not in fields:
            continue
        kpath = _key(path, key)
        lists = w.mapping(fields[key], kpath, (), ("allow", "deny"))
        if lists is None:
            parts[key] = None
            continue
        values = {k: read(w, v, _key(kpath, k)) for k, v in lists.items()}
        parts[key] = None if None in values.values() else model(**values)
    return None if None in parts.values() else AmqpAcl(**parts)


def _group_name(w: _Walker, node: Node | None, path: str, seen: dict[str, str], ipath: str, what: str) -> str | None:
    if node is None:
        return None
    name = w.name(node, path)
    if name == "other":
        w.error(node, path, f'"other" is reserved for {what} that match no group')
        return None
    if name is not None and name in seen:
        w.error(node, path, f'duplicate group name "{name}" (also {seen[name]})')
        return None
    if name is not None:
        seen[name] = ipath
    return name


def _exchange_groups(w: _Walker, node: Node, path: str) -> tuple[ExchangeGroup, ...] | None:
    items = _bounded_list(w, node, path, MAX_AMQP_GROUPS, "exchange groups")
    if items is None:
        return None
    groups: list[ExchangeGroup | None] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        fields = w.mapping(item, ipath, ("name", "exchange"), ("routing_key",))
        if fields is None:
            groups.append(None)
            continue
        name = _group_name(w, fields.get("name"), _key(ipath, "name"), seen, ipath, "publishes")
        exchange = _short_string(w, fields["exchange"], _key(ipath, "exchange")) if "exchange" in fields else None
        rk = _topic_pattern(w, fields["routing_key"], _key(ipath, "routing_key")) if "routing_key" in fields else None
        ok = name is not None and exchange is not None and ("routing_key" not in fields or rk is not None)
        groups.append(ExchangeGroup(name, exchange, rk) if ok else None)
    return None if None in groups or len(items) > MAX_AMQP_GROUPS else tuple(groups)


def _queue_groups(w: _Walker, node: Node, path: str) -> tuple[QueueGroup, ...] | None:
    items = _bounded_list(w, node, path, MAX_AMQP_GROUPS, "queue groups")
    if items is None:
        return None
    groups: list[QueueGroup | None] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        fields = w.mapping(item, ipath, ("name", "pattern"))
        if fields is None:
            groups.append(None)
            continue
        name = _group_name(w, fields.get("name"), _key(ipath, "name"), seen, ipath, "queues")
        pattern = _topic_pattern(w, fields["pattern"], _key(ipath, "pattern")) if "pattern" in fields else None
        groups.append(QueueGroup(name, pattern) if name is not None and pattern is not None else None)
    return None if None in groups or len(items) > MAX_AMQP_GROUPS else tuple(groups)


def _throttle(w: _Walker, node: Node, path: str) -> tuple[ThrottleRule, ...] | None:
    items = _bounded_list(w, node, path, MAX_AMQP_GROUPS, "throttle rules")
    if items is None:
        return None
    rules: list[ThrottleRule | None] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        fields = w.mapping(item, ipath, ("exchange",), tuple(AMQP_THROTTLE_LIMITS))
        if fields is None:
            rules.append(None)
            continue
        exchange = _short_string(w, fields["exchange"], _key(ipath, "exchange")) if "exchange" in fields else None
        if exchange is not None and exchange in seen:
            w.error(fields["exchange"], _key(ipath, "exchange"),
                    f'duplicate throttle rule for exchange "{exchange}" (also {seen[exchange]})')
            exchange = None
        elif exchange is not None:
            seen[exchange] = ipath
        limits = {k: w.integer(fields[k], _key(ipath, k), *AMQP_THROTTLE_LIMITS[k])
                  for k in AMQP_THROTTLE_LIMITS if k in fields}
        if not limits:
            w.error(item, ipath, "needs messages_per_second or bytes_per_second")
        ok = exchange is not None and limits and None not in limits.values()
        rules.append(ThrottleRule(exchange, **limits) if ok else None)
    return None if None in rules or len(items) > MAX_AMQP_GROUPS else tuple(rules)


def _amqp_options(w: _Walker, node: Node, path: str) -> AmqpOptions | None:
    fields = w.mapping(node, path, (), ("max_frame", "max_body_size", "acl", "exchanges", "queues", "throttle"))
    if fields is None:
        return None
    limits = {k: w.integer(fields[k], _key(path, k), *AMQP_LIMITS[k]) for k in AMQP_LIMITS if k in fields}
    parts: dict[str, Any] = {}
    readers = {"acl": _amqp_acl, "exchanges": _exchange_groups, "queues": _queue_groups, "throttle": _throttle}
    for key, read in readers.items():
        if key in fields:
            parts[key] = read(w, fields[key], _key(path, key))
    if None in limits.values() or None in parts.values():
        return None
    return AmqpOptions(**limits, **parts)


# -- kafka ---------------------------------------------------------------------------------------


def _kafka_topic_pattern(w: _Walker, node: Node, path: str) -> str | None:
    value = w.string(node, path)
    if value is None:
        return None
    problem = kafka_topic_pattern_problem(value)
    if problem:
        w.error(node, path, f'invalid topic pattern "{value}": {problem}')
        return None
    return value


def _kafka_topic_patterns(w: _Walker, node: Node, path: str) -> tuple[str, ...] | None:
    items = _bounded_list(w, node, path, MAX_KAFKA_ACL_PATTERNS, "patterns")
    if items is None:
        return None
    patterns = [_kafka_topic_pattern(w, item, _idx(path, i)) for i, item in enumerate(items)]
    return None if None in patterns or len(items) > MAX_KAFKA_ACL_PATTERNS else tuple(patterns)


def _kafka_acl(w: _Walker, node: Node, path: str) -> KafkaAcl | None:
    fields = w.mapping(node, path, (), ("produce", "consume"))
    if fields is None:
        return None
    parts: dict[str, AclRule | None] = {}
    for key, value in fields.items():
        kpath = _key(path, key)
        lists = w.mapping(value, kpath, (), ("allow", "deny"))
        if lists is None:
            parts[key] = None
            continue
        patterns = {k: _kafka_topic_patterns(w, v, _key(kpath, k)) for k, v in lists.items()}
        parts[key] = None if None in patterns.values() else AclRule(**patterns)
    return None if None in parts.values() else KafkaAcl(**parts)


def _node_id(w: _Walker, node: Node, path: str) -> int | None:
    return w.integer(node, path, 0, MAX_KAFKA_NODE_ID)


def _node_ports(w: _Walker, node: Node, path: str) -> tuple[tuple[int, int], ...] | None:
    """{node id: port}: a mapping with integer keys (the walker's mapping() wants string keys)."""
    w.visit(node, path)
    if not isinstance(node, MappingNode):
        w.error(node, path, f"expected a mapping of node id to port, got {_describe(node)}")
        return None
    out: dict[int, int] = {}
    ok = True
    for key_node, value_node in node.value:
        if not (isinstance(key_node, ScalarNode) and key_node.tag == "tag:yaml.org,2002:int"):
            w.error(key_node, path, f"keys must be node ids (integers), got {_describe(key_node)}")
            ok = False
            continue
        node_id = SafeConstructor().construct_object(key_node)
        kpath = _key(path, str(node_id))
        w.visit(value_node, kpath)
        if not 0 <= node_id <= MAX_KAFKA_NODE_ID:
            w.error(key_node, kpath, f"node id {node_id} is out of range 0..{MAX_KAFKA_NODE_ID}")
            ok = False
            continue
        if node_id in out:
            w.error(key_node, kpath, "duplicate key")
            ok = False
            continue
        port = w.integer(value_node, kpath, 1, 65535)
        if port is None:
            ok = False
            continue
        out[node_id] = port
    return tuple(out.items()) if ok else None


def _topic_groups(w: _Walker, node: Node, path: str) -> tuple[TopicGroup, ...] | None:
    items = _bounded_list(w, node, path, MAX_KAFKA_GROUPS, "topic groups")
    if items is None:
        return None
    groups: list[TopicGroup | None] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        fields = w.mapping(item, ipath, ("name", "pattern"))
        if fields is None:
            groups.append(None)
            continue
        name = _group_name(w, fields.get("name"), _key(ipath, "name"), seen, ipath, "topics")
        pattern = _kafka_topic_pattern(w, fields["pattern"], _key(ipath, "pattern")) if "pattern" in fields else None
        groups.append(TopicGroup(name, pattern) if name is not None and pattern is not None else None)
    return None if None in groups or len(items) > MAX_KAFKA_GROUPS else tuple(groups)


def _rule_topic(w: _Walker, fields: dict[str, Node], ipath: str, seen: dict[str, str], what: str) -> str | None:
    """The `topic` of a durability or quota rule: a pattern, one rule per pattern."""
    if "topic" not in fields:
        return None
    topic = _kafka_topic_pattern(w, fields["topic"], _key(ipath, "topic"))
    if topic is not None and topic in seen:
        w.error(fields["topic"], _key(ipath, "topic"), f'duplicate {what} rule for topic "{topic}" (also {seen[topic]})')
        return None
    if topic is not None:
        seen[topic] = ipath
    return topic


def _min_acks(w: _Walker, node: Node, path: str) -> str | int | None:
    w.visit(node, path)
    value: Any = None
    if isinstance(node, ScalarNode) and node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:str"):
        value = node.value if node.tag.endswith(":str") else SafeConstructor().construct_object(node)
        if value in MIN_ACKS and not isinstance(value, bool):
            return value
    shown = f'"{value}"' if isinstance(value, str) else value if value is not None else _describe(node)
    w.error(node, path, f"expected all, -1, 1 or 0, got {shown}")
    return None


def _durability(w: _Walker, node: Node, path: str) -> tuple[DurabilityRule, ...] | None:
    items = _bounded_list(w, node, path, MAX_KAFKA_GROUPS, "durability rules")
    if items is None:
        return None
    rules: list[DurabilityRule | None] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        fields = w.mapping(item, ipath, ("topic", "min_acks"))
        if fields is None:
            rules.append(None)
            continue
        topic = _rule_topic(w, fields, ipath, seen, "durability")
        acks = _min_acks(w, fields["min_acks"], _key(ipath, "min_acks")) if "min_acks" in fields else None
        rules.append(DurabilityRule(topic, acks) if topic is not None and acks is not None else None)
    return None if None in rules or len(items) > MAX_KAFKA_GROUPS else tuple(rules)


def _quotas(w: _Walker, node: Node, path: str) -> tuple[QuotaRule, ...] | None:
    items = _bounded_list(w, node, path, MAX_KAFKA_GROUPS, "quotas")
    if items is None:
        return None
    rules: list[QuotaRule | None] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        fields = w.mapping(item, ipath, ("topic",), tuple(KAFKA_QUOTA_LIMITS))
        if fields is None:
            rules.append(None)
            continue
        topic = _rule_topic(w, fields, ipath, seen, "quota")
        limits = {k: w.integer(fields[k], _key(ipath, k), *KAFKA_QUOTA_LIMITS[k])
                  for k in KAFKA_QUOTA_LIMITS if k in fields}
        if not limits:
            w.error(item, ipath, "needs records_per_second or bytes_per_second")
        ok = topic is not None and limits and None not in limits.values()
        rules.append(QuotaRule(topic, **limits) if ok else None)
    return None if None in rules or len(items) > MAX_KAFKA_GROUPS else tuple(rules)


def _kafka_options(w: _Walker, node: Node, path: str) -> KafkaOptions | None:
    fields = w.mapping(node, path, (), ("node_ports", "max_frame", "acl", "topics", "durability",
                                        "max_batch_bytes", "quotas"))
    if fields is None:
        return None
    limits = {k: w.integer(fields[k], _key(path, k), *KAFKA_LIMITS[k]) for k in KAFKA_LIMITS if k in fields}
    parts: dict[str, Any] = {}
    readers = {"node_ports": _node_ports, "acl": _kafka_acl, "topics": _topic_groups,
               "durability": _durability, "quotas": _quotas}
    for key, read in readers.items():
        if key in fields:
            parts[key] = read(w, fields[key], _key(path, key))
    if None in limits.values() or None in parts.values():
        return None
    return KafkaOptions(**limits, **parts)


def _broker_nodes(w: _Walker, node: Node, path: str) -> tuple[KafkaNode, ...] | None:
    items = w.sequence(node, path)
    if items is None:
        return None
    if not items:
        w.error(node, path, "expected at least one node (leave nodes out to discover them)")
        return None
    nodes: list[KafkaNode | None] = []
    seen: dict[int, str] = {}
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        fields = w.mapping(item, ipath, ("id", "address"))
        if fields is None:
            nodes.append(None)
            continue
        node_id = _node_id(w, fields["id"], _key(ipath, "id")) if "id" in fields else None
        if node_id is not None and node_id in seen:
            w.error(fields["id"], _key(ipath, "id"), f"duplicate node id {node_id} (also {seen[node_id]})")
            node_id = None
        elif node_id is not None:
            seen[node_id] = ipath
        address = _address(w, fields["address"], _key(ipath, "address")) if "address" in fields else None
        nodes.append(KafkaNode(node_id, address) if node_id is not None and address is not None else None)
    return None if None in nodes else tuple(nodes)


_PROTOCOL_OPTIONS = {"nats": _nats_options, "amqp": _amqp_options, "kafka": _kafka_options}


def _broker(w: _Walker, node: Node, path: str) -> Broker | None:
    fields = w.mapping(node, path, ("name", "protocol"), ("address", "nodes"))
    if fields is None:
        return None
    name = w.name(fields["name"], _key(path, "name")) if "name" in fields else None
    protocol = _protocol(w, fields["protocol"], _key(path, "protocol")) if "protocol" in fields else None
    address = _address(w, fields["address"], _key(path, "address")) if "address" in fields else None
    nodes = None
    if "nodes" in fields:
        npath = _key(path, "nodes")
        if protocol is not None and protocol != "kafka":
            w.error(fields["nodes"], npath, f'"nodes" is for kafka brokers only, this one speaks {protocol}')
        elif protocol == "kafka" and "address" not in fields:
            w.error(fields["nodes"], npath, 'nodes need the bootstrap "address" (a kafka broker without one '
                                            "is embedded by `evmesh run`, which discovers its nodes)")
        else:
            nodes = _broker_nodes(w, fields["nodes"], npath)
    if name is None or protocol is None or ("address" in fields and address is None) or ("nodes" in fields and nodes is None):
        return None
    return Broker(name=name, protocol=protocol, address=address, nodes=nodes)


def _listener(w: _Walker, node: Node, path: str) -> Listener | None:
    fields = w.mapping(node, path, ("name", "protocol", "port", "broker"), ("bind", *SUPPORTED_PROTOCOLS))
    if fields is None:
        return None
    name = w.name(fields["name"], _key(path, "name")) if "name" in fields else None
    protocol = _protocol(w, fields["protocol"], _key(path, "protocol")) if "protocol" in fields else None
    port = w.integer(fields["port"], _key(path, "port"), 1, 65535) if "port" in fields else None
    broker = w.name(fields["broker"], _key(path, "broker")) if "broker" in fields else None
    bind = _bind(w, fields["bind"], _key(path, "bind")) if "bind" in fields else DEFAULT_BIND
    options: dict[str, Any] = {}
    for proto in SUPPORTED_PROTOCOLS:
        if proto in fields:
            if protocol is not None and proto != protocol:
                w.error(fields[proto], _key(path, proto), f'"{proto}" options on a {protocol} listener')
            else:
                options[proto] = _PROTOCOL_OPTIONS[proto](w, fields[proto], _key(path, proto))
    if None in (name, protocol, port, broker, bind) or None in options.values():
        return None
    return Listener(name=name, protocol=protocol, port=port, broker=broker, bind=bind, **options)


def _unique(w: _Walker, nodes: list[Node], path: str, attr: str, what: str) -> None:
    """Flag repeated scalar values of `attr` across list items (valid items or not)."""
    seen: dict[tuple[str, str], int] = {}
    for i, node in enumerate(nodes):
        value = _get(node, attr)
        if not isinstance(value, ScalarNode) or value.value == "":
            continue
        key = (value.tag, value.value)
        if key in seen:
            shown = f'"{value.value}"' if value.tag.endswith(":str") else value.value
            w.error(value, _key(_idx(path, i), attr), f"duplicate {what} {shown} (also {_idx(path, seen[key])})")
        else:
            seen[key] = i


def _get(node: Node, key: str) -> Node | None:
    """The value node of `key` in a mapping node, if any."""
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return v
    return None


def _field_node(node: Node, key: str) -> Node:
    """The value node of `key`, else the node itself (for error lines)."""
    return _get(node, key) or node


def _check_spec(w: _Walker, root: Node | None) -> Spec | None:
    if root is None:
        w.error(None, "", "empty spec: expected a mapping with version, brokers and listeners")
        return None
    fields = w.mapping(root, "", ("version", "brokers", "listeners"), ("admin",))
    if fields is None:
        return None
    version = None
    if "version" in fields:
        version = w._scalar(fields["version"], "version", "tag:yaml.org,2002:int")
        if version is not None and version != SPEC_VERSION:
            w.error(fields["version"], "version", f"unsupported spec version {version} (supported: {SPEC_VERSION})")
            version = None

    admin = Admin()
    if "admin" in fields:
        admin_fields = w.mapping(fields["admin"], "admin", (), ("port",))
        if admin_fields and "port" in admin_fields:
            port = w.integer(admin_fields["port"], "admin.port", 0, 65535)
            admin = Admin(port=port if port is not None else DEFAULT_ADMIN_PORT)

    broker_nodes = w.sequence(fields["brokers"], "brokers") if "brokers" in fields else None
    brokers = [_broker(w, n, _idx("brokers", i)) for i, n in enumerate(broker_nodes or [])]
    _unique(w, broker_nodes or [], "brokers", "name", "broker name")

    listener_nodes = w.sequence(fields["listeners"], "listeners") if "listeners" in fields else None
    if listener_nodes == []:
        w.error(fields["listeners"], "listeners", "expected at least one listener")
    listeners = [_listener(w, n, _idx("listeners", i)) for i, n in enumerate(listener_nodes or [])]
    _unique(w, listener_nodes or [], "listeners", "name", "listener name")
    _unique(w, listener_nodes or [], "listeners", "port", "listener port")

    by_name = {b.name: b for b in brokers if b is not None}
    declared = sorted({n.value for n in (_get(b, "name") for b in broker_nodes or []) if isinstance(n, ScalarNode)})
    for i, lst in enumerate(listeners):
        if lst is None:
            continue
        path = _key(_idx("listeners", i), "broker")
        node = _field_node(listener_nodes[i], "broker")
        if admin.port and lst.port == admin.port:
            w.error(_field_node(listener_nodes[i], "port"), _key(_idx("listeners", i), "port"), f"port {lst.port} is the admin port")
        broker = by_name.get(lst.broker)
        if lst.broker not in declared:
            w.error(node, path, f'unknown broker "{lst.broker}"' + _hint(lst.broker, declared))
        elif broker is not None and broker.protocol != lst.protocol:
            w.error(node, path, f'broker "{broker.name}" speaks {broker.protocol}, this listener {lst.protocol}')
    _check_kafka_nodes(w, admin, brokers, listeners)

    if w.issues or version is None:
        return None
    return Spec(version=version, admin=admin, brokers=tuple(brokers), listeners=tuple(listeners), source=w.source)


def _check_kafka_nodes(w: _Walker, admin: Admin, brokers: list[Broker | None], listeners: list[Listener | None]) -> None:
    """Node ports of the nodes written in the spec (discovered ones are checked again at render time)."""
    declared = {b.name: [n.id for n in b.nodes] for b in brokers if b is not None and b.nodes is not None}
    for i, lst in enumerate(listeners):
        if lst is None or lst.kafka is None or lst.broker not in declared:
            continue
        ids = declared[lst.broker]
        for node_id, _ in lst.kafka.node_ports:
            if node_id not in ids:
                path = f"listeners[{i}].kafka.node_ports.{node_id}"
                shown = ", ".join(str(n) for n in sorted(ids))
                w.issues.append(SpecIssue(w.source, w.line_of(path), path,
                                          f'broker "{lst.broker}" has no node {node_id} (its nodes: {shown})'))
    for path, message in node_port_problems(listeners, brokers, admin.port, declared):
        w.issues.append(SpecIssue(w.source, w.line_of(path), path, message))


# -- entry points ------------------------------------------------------------------------------


# libyaml's composer when PyYAML has it: ~10x less CPU on large specs (`evmesh xds serve` reloads on
# every edit); on a YAML error the pure-Python one composes again, for the messages documented in spec.md
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str, source: str) -> Node | None:
    if _LOADER is not yaml.SafeLoader:
        try:
            return yaml.compose(text, Loader=_LOADER)
        except yaml.YAMLError:
            pass  # compose again below, for the pure-Python loader's messages (the ones documented)
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise SpecError([SpecIssue(source, line, "", f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(source, None, "", f"YAML error: {exc}")]) from None


def load_spec_text(text: str, source: str = "<spec>", native_check: bool = True) -> Spec:
    """Validate a spec given as YAML text. Raises SpecError with every problem found.

    With native_check, each listener's filter config is also checked by the C++ parser in
    libevmesh_check.so (NativeLibraryMissing if it is not built).
    """
    w = _Walker(source)
    root = _compose(text, source)
    spec = _check_spec(w, root)
    if native_check:
        _native_check(w, root, spec)
    if w.issues or spec is None:
        raise SpecError(sorted(w.issues, key=lambda i: (i.line or 0, i.column or 0)))
    return spec


def load_spec(path: str | Path, native_check: bool = True) -> Spec:
    """Validate the spec file at `path` (see load_spec_text)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EvmeshError(f"{path}: cannot read spec: {exc.strerror}") from None
    return load_spec_text(text, source=str(path), native_check=native_check)


def load_spec_data(data: dict[str, Any], native_check: bool = True) -> Spec:
    """Validate a spec given as plain data (e.g. a dict built by a test)."""
    return load_spec_text(yaml.safe_dump(data, sort_keys=False), source="<spec>", native_check=native_check)


def _native_check(w: _Walker, root: Node | None, spec: Spec | None) -> None:
    """Run the C++ config parser on every listener that passed the Python checks."""
    from .native import checker  # cffi is loaded only when needed

    listener_nodes = _get(root, "listeners") if root is not None else None
    if spec is not None:
        candidates = list(enumerate(spec.listeners))
    elif isinstance(listener_nodes, SequenceNode):
        # The spec has problems elsewhere: still check the listeners that are sound on their own.
        candidates = []
        for i, node in enumerate(listener_nodes.value):
            path = _idx("listeners", i)
            if not w.has_issues_under(path):
                lst = _listener(_Walker(w.source), node, path)
                if lst is not None:
                    candidates.append((i, lst))
    else:
        candidates = []
    if not candidates:
        return
    try:
        check = checker()
    except NativeLibraryMissing as exc:
        if w.issues:  # report the problems we have; the missing library comes up once they are fixed
            return
        raise NativeLibraryMissing(f"{exc} (or skip this check with --no-native-check)") from None
    declared = {b.name: [n.id for n in b.nodes] for b in spec.brokers if b.nodes} if spec is not None else {}
    for i, lst in candidates:
        # kafka: the nodes written in the spec; discovered ones are not known yet ("nodes": [])
        problem = check.check(lst.protocol, lst.filter_json(declared.get(lst.broker, ())))
        if problem is None:
            continue
        path, message = native_problem_path(i, lst.protocol, problem)
        w.issues.append(SpecIssue(w.source, w.line_of(path), path, message))


def native_problem_path(index: int, protocol: str, problem: str) -> tuple[str, str]:
    """Map the checker's "<field path>: <problem>" for listeners[index] to (spec path, problem)."""
    field, sep, message = problem.partition(": ")
    listener = _idx("listeners", index)
    if not sep or not field or " " in field:  # no field path: attach to the listener's options block
        return _key(listener, protocol), problem
    if field == "(config)":  # the whole filter config
        return _key(listener, protocol), message
    if field == "stat_prefix":  # the filter's stat_prefix is the listener's name
        return _key(listener, "name"), message
    if field == "filter_name":  # the filter is chosen by the listener's protocol
        return _key(listener, "protocol"), message
    return _key(_key(listener, protocol), field), message
