"""Kafka in the mesh spec: the `kafka:` block and broker `nodes`, Python-side checks with YAML paths and
lines, node ports (validate time for nodes in the spec, render time for discovered ones), the render
(a bootstrap listener plus one listener and cluster per broker node) and the golden example."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from evmesh import EvmeshError, SpecError, load_spec, load_spec_text, render_bootstrap, render_yaml
from evmesh.render import bootstrap
from evmesh.spec import KafkaNode, KafkaOptions, kafka_topic_pattern_problem
from evmesh.spec.kafka_topics import topic_pattern_kind
from evmesh.spec.loader import native_problem_path
from evmesh.spec.models import Address, DurabilityRule
from evmesh.xds.resources import CLUSTER_TYPE, LISTENER_TYPE, resource_to_rendered, spec_resources

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "envoy_configs" / "kafka-example.yaml"
GOLDEN = REPO / "envoy_configs" / "kafka-example.envoy.yaml"
EMBEDDED = {"kafka-main": "127.0.0.1:9092"}

TWO_NODES = """\
version: 1
brokers:
  - name: kafka-main
    protocol: kafka
    address: 127.0.0.1:9092
    nodes:
      - {id: 1, address: 127.0.0.1:9092}
      - {id: 2, address: "kafka-2.internal:9093"}
listeners:
  - name: orders-kafka
    protocol: kafka
    port: 19092
    broker: kafka-main
    kafka:
      node_ports: {2: 19102}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as exc:
        load_spec_text(textwrap.dedent(text), source="spec.yaml", native_check=False)
    return [str(i) for i in exc.value.issues]


def spec_text(kafka_block: str, broker: str = "  - name: km\n    protocol: kafka\n") -> str:
    """A one-listener kafka spec; the kafka block (indented 4) starts on line 10 with the default broker."""
    head = "version: 1\nbrokers:\n" + broker + textwrap.dedent("""\
        listeners:
          - name: orders
            protocol: kafka
            port: 19092
            broker: km
        """)
    return head + textwrap.indent(textwrap.dedent(kafka_block), "    ")


# -- models and filter JSON ----------------------------------------------------------------------


def test_example_filter_json_is_one_to_one():
    spec = load_spec(EXAMPLE, native_check=False)
    (broker,) = spec.brokers
    assert broker.protocol == "kafka" and broker.embedded and broker.nodes is None
    (lst,) = spec.listeners
    assert lst.filter_json([1]) == {
        "stat_prefix": "orders-kafka",
        "advertised_host": "127.0.0.1",
        "bootstrap_port": 19092,
        "nodes": [{"id": 1, "port": 19094}],
        "max_frame": 104857600,
        "acl": {
            "produce": {"allow": ["orders.*", "payments.*"], "deny": ["orders.secret"]},
            "consume": {"allow": ["orders.*", "payments.*"], "deny": ["orders.secret"]},
        },
        "topics": [
            {"name": "orders_eu", "pattern": "orders.eu.*"},
            {"name": "orders", "pattern": "orders.*"},
            {"name": "payments", "pattern": "payments.*"},
        ],
        "durability": [{"topic": "payments.*", "min_acks": -1}],
        "max_batch_bytes": 1048576,
        "quotas": [{"topic": "orders.*", "records_per_second": 100000, "bytes_per_second": 104857600}],
    }
    assert lst.filter_json()["nodes"] == []  # validate time: nodes not known


def test_absent_block_and_absent_keys_stay_absent():
    spec = load_spec_text(spec_text(""), native_check=False)
    lst = spec.listeners[0]
    assert lst.kafka is None
    assert lst.filter_json() == {"stat_prefix": "orders", "advertised_host": "127.0.0.1", "bootstrap_port": 19092,
                                 "nodes": []}
    spec = load_spec_text(spec_text("""\
        kafka:
          acl: {produce: {allow: []}, consume: {deny: []}}
          quotas: [{topic: "a?c", bytes_per_second: 1000}]
        """), native_check=False)
    assert spec.listeners[0].filter_json([0, 5]) == {
        "stat_prefix": "orders", "advertised_host": "127.0.0.1", "bootstrap_port": 19092,
        "nodes": [{"id": 0, "port": 19093}, {"id": 5, "port": 19098}],
        "acl": {"produce": {"allow": []}, "consume": {"deny": []}},
        "quotas": [{"topic": "a?c", "bytes_per_second": 1000}],
    }


@pytest.mark.parametrize("bind, advertised", [("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"),
                                              ("10.1.2.3", "10.1.2.3"), ("::1", "::1")])
def test_advertised_host_is_the_bind_address(bind, advertised):
    spec = load_spec_text(spec_text(f"bind: '{bind}'\n"), native_check=False)
    assert spec.listeners[0].filter_json()["advertised_host"] == advertised


@pytest.mark.parametrize("written, rendered", [("all", -1), ("-1", -1), ("1", 1), ("0", 0)])
def test_min_acks_render_as_integers(written, rendered):
    spec = load_spec_text(spec_text(f"kafka:\n  durability: [{{topic: t, min_acks: {written}}}]\n"), native_check=False)
    assert spec.listeners[0].filter_json()["durability"] == [{"topic": "t", "min_acks": rendered}]
    assert DurabilityRule("t", "all").to_json() == {"topic": "t", "min_acks": -1}


def test_node_ports_default_and_explicit():
    opts = KafkaOptions(node_ports=((2, 19102),))
    assert opts.node_port(19092, 1) == 19094
    assert opts.node_port(19092, 2) == 19102


def test_broker_nodes_model():
    spec = load_spec_text(TWO_NODES, native_check=False)
    assert spec.brokers[0].nodes == (KafkaNode(1, Address("127.0.0.1", 9092)),
                                     KafkaNode(2, Address("kafka-2.internal", 9093)))
    assert spec.listeners[0].kafka.node_ports == ((2, 19102),)


@pytest.mark.parametrize("pattern, kind", [("orders", "exact"), ("orders.*", "prefix"), ("*", "prefix"),
                                           ("o*s", "glob"), ("orders.?", "glob"), ("a**", "glob")])
def test_topic_pattern_kinds(pattern, kind):
    assert kafka_topic_pattern_problem(pattern) is None
    assert topic_pattern_kind(pattern) == kind


@pytest.mark.parametrize("pattern, problem", [
    ("", "must not be empty"),
    ("a" * 249, None),
    ("a" * 250, "longer than 249 characters (250)"),
    ("a b", "' ' is not allowed: use A-Z a-z 0-9 . _ - and the wildcards * ?"),
    ("orders/x", "'/' is not allowed: use A-Z a-z 0-9 . _ - and the wildcards * ?"),
    ("é", "'é' is not allowed: use A-Z a-z 0-9 . _ - and the wildcards * ?"),
    ("__consumer_offsets", None), ("a-b_c.D9", None),
])
def test_topic_pattern_problems(pattern, problem):
    assert kafka_topic_pattern_problem(pattern) == problem


# -- validation errors: FILE:LINE: path: problem ---------------------------------------------------


def test_kafka_block_problems_name_path_and_line():
    text = spec_text("""\
        kafka:
          max_frame: 1023
          max_batch_bytes: "1"
          acl:
            produce:
              allow: ["orders.*", "a b", ""]
              deny: orders
            consume: {allow: [7]}
            publish: {}
          topics:
            - {name: other, pattern: "x"}
            - {name: t1, pattern: "orders.*"}
            - {name: t1, pattern: "o/x"}
            - {name: t2}
          durability:
            - {topic: "p.*", min_acks: 2}
            - {topic: "p.*", min_acks: all}
            - {topic: q, min_acks: always}
            - {topic: r, min_acks: true}
            - {topic: s}
          quotas:
            - {topic: "o.*", records_per_second: 0}
            - {topic: "o.*", bytes_per_second: 10}
            - {topic: x}
            - {topic: y, bytes_per_second: 1099511627777}
          max_payload: 1
        """)
    assert problems(text) == [
        "spec.yaml:11: listeners[0].kafka.max_frame: 1023 is out of range 1024..1073741824",
        "spec.yaml:12: listeners[0].kafka.max_batch_bytes: expected an integer, got a string",
        'spec.yaml:15: listeners[0].kafka.acl.produce.allow[1]: invalid topic pattern "a b": '
        "' ' is not allowed: use A-Z a-z 0-9 . _ - and the wildcards * ?",
        "spec.yaml:15: listeners[0].kafka.acl.produce.allow[2]: must not be empty",
        "spec.yaml:16: listeners[0].kafka.acl.produce.deny: expected a list, got a string",
        "spec.yaml:17: listeners[0].kafka.acl.consume.allow[0]: expected a string, got an integer",
        'spec.yaml:18: listeners[0].kafka.acl.publish: unknown key',
        'spec.yaml:20: listeners[0].kafka.topics[0].name: "other" is reserved for topics that match no group',
        'spec.yaml:22: listeners[0].kafka.topics[2].name: duplicate group name "t1" (also listeners[0].kafka.topics[1])',
        'spec.yaml:22: listeners[0].kafka.topics[2].pattern: invalid topic pattern "o/x": '
        "'/' is not allowed: use A-Z a-z 0-9 . _ - and the wildcards * ?",
        'spec.yaml:23: listeners[0].kafka.topics[3]: missing required key "pattern"',
        "spec.yaml:25: listeners[0].kafka.durability[0].min_acks: expected all, -1, 1 or 0, got 2",
        'spec.yaml:26: listeners[0].kafka.durability[1].topic: duplicate durability rule for topic "p.*" '
        "(also listeners[0].kafka.durability[0])",
        'spec.yaml:27: listeners[0].kafka.durability[2].min_acks: expected all, -1, 1 or 0, got "always"',
        "spec.yaml:28: listeners[0].kafka.durability[3].min_acks: expected all, -1, 1 or 0, got a boolean",
        'spec.yaml:29: listeners[0].kafka.durability[4]: missing required key "min_acks"',
        "spec.yaml:31: listeners[0].kafka.quotas[0].records_per_second: 0 is out of range 1..10000000",
        'spec.yaml:32: listeners[0].kafka.quotas[1].topic: duplicate quota rule for topic "o.*" '
        "(also listeners[0].kafka.quotas[0])",
        "spec.yaml:33: listeners[0].kafka.quotas[2]: needs records_per_second or bytes_per_second",
        "spec.yaml:34: listeners[0].kafka.quotas[3].bytes_per_second: 1099511627777 is out of range 1..1099511627776",
        "spec.yaml:35: listeners[0].kafka.max_payload: unknown key",
    ]


def test_max_limits():
    text = spec_text("kafka:\n  max_frame: 1073741825\n  max_batch_bytes: 0\n")
    assert problems(text) == [
        "spec.yaml:11: listeners[0].kafka.max_frame: 1073741825 is out of range 1024..1073741824",
        "spec.yaml:12: listeners[0].kafka.max_batch_bytes: 0 is out of range 1..1073741824",
    ]


@pytest.mark.parametrize("key, item, what", [
    ("topics", "{{name: g{i}, pattern: t{i}}}", "topic groups"),
    ("durability", "{{topic: t{i}, min_acks: 1}}", "durability rules"),
    ("quotas", "{{topic: t{i}, records_per_second: 1}}", "quotas"),
])
def test_caps_of_64(key, item, what):
    items = "\n".join("    - " + item.format(i=i) for i in range(65))
    assert problems(spec_text(f"kafka:\n  {key}:\n{items}\n")) == [
        f"spec.yaml:12: listeners[0].kafka.{key}: at most 64 {what}, got 65"]
    items = "\n".join("    - " + item.format(i=i) for i in range(64))
    assert load_spec_text(spec_text(f"kafka:\n  {key}:\n{items}\n"), native_check=False)


def test_acl_cap_of_1024_patterns():
    patterns = ", ".join(f'"t{i}"' for i in range(1025))
    assert problems(spec_text(f"kafka:\n  acl:\n    consume:\n      deny: [{patterns}]\n")) == [
        "spec.yaml:13: listeners[0].kafka.acl.consume.deny: at most 1024 patterns, got 1025"]


def test_node_ports_problems():
    text = spec_text("""\
        kafka:
          node_ports:
            1: 19101
            "2": 19102
            -1: 19103
            3: 70000
            4: "x"
            1: 19105
        """)
    assert problems(text) == [
        "spec.yaml:13: listeners[0].kafka.node_ports: keys must be node ids (integers), got a string",
        "spec.yaml:14: listeners[0].kafka.node_ports.-1: node id -1 is out of range 0..2147483647",
        "spec.yaml:15: listeners[0].kafka.node_ports.3: 70000 is out of range 1..65535",
        "spec.yaml:16: listeners[0].kafka.node_ports.4: expected an integer, got a string",
        "spec.yaml:17: listeners[0].kafka.node_ports.1: duplicate key",
    ]
    assert problems(spec_text("kafka:\n  node_ports: [19101]\n")) == [
        "spec.yaml:11: listeners[0].kafka.node_ports: expected a mapping of node id to port, got a list"]


def test_broker_nodes_problems():
    text = textwrap.dedent("""\
        version: 1
        brokers:
          - name: n
            protocol: nats
            nodes: [{id: 1, address: "127.0.0.1:4222"}]
          - name: k1
            protocol: kafka
            nodes: [{id: 1, address: "127.0.0.1:9092"}]
          - name: k2
            protocol: kafka
            address: 127.0.0.1:9092
            nodes: []
          - name: k3
            protocol: kafka
            address: 127.0.0.1:9092
            nodes:
              - {id: 1, address: "127.0.0.1:9092"}
              - {id: 1, address: "127.0.0.1:9093"}
              - {id: -2, address: "127.0.0.1:9094"}
              - {address: "127.0.0.1:9095"}
              - {id: 5, address: "127.0.0.1"}
              - {id: 6, address: "127.0.0.1:1", rack: a}
        listeners:
          - {name: l, protocol: kafka, port: 19092, broker: k3}
        """)
    assert problems(text) == [
        'spec.yaml:5: brokers[0].nodes: "nodes" is for kafka brokers only, this one speaks nats',
        'spec.yaml:8: brokers[1].nodes: nodes need the bootstrap "address" (a kafka broker without one is '
        "embedded by `evmesh run`, which discovers its nodes)",
        "spec.yaml:12: brokers[2].nodes: expected at least one node (leave nodes out to discover them)",
        "spec.yaml:18: brokers[3].nodes[1].id: duplicate node id 1 (also brokers[3].nodes[0])",
        "spec.yaml:19: brokers[3].nodes[2].id: -2 is out of range 0..2147483647",
        'spec.yaml:20: brokers[3].nodes[3]: missing required key "id"',
        'spec.yaml:21: brokers[3].nodes[4].address: expected "host:port", got "127.0.0.1"',
        "spec.yaml:22: brokers[3].nodes[5].rack: unknown key",
    ]


def test_node_port_checks_for_nodes_in_the_spec():
    text = textwrap.dedent("""\
        version: 1
        admin: {port: 19103}
        brokers:
          - name: km
            protocol: kafka
            address: 127.0.0.1:9092
            nodes:
              - {id: 1, address: "127.0.0.1:9092"}
              - {id: 2, address: "127.0.0.1:9093"}
              - {id: 70000, address: "127.0.0.1:9094"}
          - {name: km-node-2, protocol: kafka}
        listeners:
          - name: a
            protocol: kafka
            port: 19092
            broker: km
            kafka:
              node_ports: {2: 19103, 9: 19109}
          - {name: b, protocol: kafka, port: 19094, broker: km, kafka: {node_ports: {70000: 19200}}}
          - {name: a-node-1, protocol: kafka, port: 19300, broker: km-node-2, kafka: {node_ports: {1: 19200}}}
        """)
    assert problems(text) == [
        'spec.yaml:11: brokers[1].name: broker name "km-node-2" is also the name of the cluster of node 2 of '
        "brokers[0] (<broker>-node-<id>)",
        'spec.yaml:18: listeners[0].kafka.node_ports.9: broker "km" has no node 9 (its nodes: 1, 2, 70000)',
        "spec.yaml:18: listeners[0].kafka.node_ports: port 19094 of node 1 is also the port of listeners[1]",
        "spec.yaml:18: listeners[0].kafka.node_ports.2: port 19103 of node 2 is also the admin port",
        "spec.yaml:18: listeners[0].kafka.node_ports: node 70000 needs a port here: its default "
        "19092 + 1 + 70000 = 89093 is over 65535",
        'spec.yaml:20: listeners[2].name: listener name "a-node-1" is also the name of the listener of node 1 of '
        "listeners[0] (<listener>-node-<id>)",
        "spec.yaml:20: listeners[2].kafka.node_ports.1: port 19200 of node 1 is also the port of node 70000 "
        "of listeners[1]",
    ]


def test_python_side_maps_native_problems_into_the_kafka_block(monkeypatch):
    """The native checker gets the kafka JSON (nodes from the spec, else []) and its answer lands at
    listeners[i].kafka.<field path> with the nearest line."""
    seen = []

    class Fake:
        def check(self, protocol, config):
            seen.append((protocol, config))
            return "quotas[0].topic: not like that" if protocol == "kafka" else None

    monkeypatch.setattr("evmesh.spec.native.checker", lambda: Fake())
    with pytest.raises(SpecError) as exc:
        load_spec_text(TWO_NODES + "      quotas: [{topic: x, records_per_second: 1}]\n", source="spec.yaml")
    assert [str(i) for i in exc.value.issues] == ["spec.yaml:16: listeners[0].kafka.quotas[0].topic: not like that"]
    assert [c["nodes"] for _, c in seen] == [[{"id": 1, "port": 19094}, {"id": 2, "port": 19102}]]
    seen.clear()
    with pytest.raises(SpecError):
        load_spec(EXAMPLE)
    assert seen[0][1]["nodes"] == []
    assert native_problem_path(0, "kafka", "acl.produce.allow[2]: bad") == ("listeners[0].kafka.acl.produce.allow[2]", "bad")
    assert native_problem_path(1, "kafka", 'filter_name: unknown filter "kafka"') == ("listeners[1].protocol",
                                                                                     'unknown filter "kafka"')


# -- rendering -----------------------------------------------------------------------------------


def test_golden_render_is_byte_identical():
    """Regenerate after an intended change with: EVMESH_UPDATE_GOLDEN=1 pytest tests/unit/test_spec_kafka.py"""
    text = render_yaml(load_spec(EXAMPLE, native_check=False), EMBEDDED)
    if os.environ.get("EVMESH_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_render_without_embedded_address_notes_the_default_and_node():
    text = render_yaml(load_spec(EXAMPLE, native_check=False))
    first, rest = text.split("\n", 1)
    assert first == ("# broker kafka-main has no address: rendered at 127.0.0.1:9092 as node 1 "
                     "(`evmesh run` starts an embedded kafka broker instead)")
    assert rest == GOLDEN.read_text()


def _filters(listener):
    evmesh_filter, tcp_proxy = listener["filter_chains"][0]["filters"]
    return evmesh_filter["typed_config"], tcp_proxy["typed_config"]


def _endpoint(cluster):
    return cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]


def test_render_one_listener_and_cluster_per_node():
    spec = load_spec_text(TWO_NODES, native_check=False)
    static = render_bootstrap(spec)["static_resources"]
    listeners = {x["name"]: x for x in static["listeners"]}
    clusters = {c["name"]: c for c in static["clusters"]}
    assert list(listeners) == ["orders-kafka", "orders-kafka-node-1", "orders-kafka-node-2"]
    assert list(clusters) == ["kafka-main", "kafka-main-node-1", "kafka-main-node-2"]
    ports = {n: x["address"]["socket_address"]["port_value"] for n, x in listeners.items()}
    assert ports == {"orders-kafka": 19092, "orders-kafka-node-1": 19094, "orders-kafka-node-2": 19102}
    expected_json = {"stat_prefix": "orders-kafka", "advertised_host": "127.0.0.1", "bootstrap_port": 19092,
                     "nodes": [{"id": 1, "port": 19094}, {"id": 2, "port": 19102}]}
    routes = {}
    for name, x in listeners.items():
        typed, proxy = _filters(x)
        assert typed["filter_name"] == "kafka"
        assert typed["filter_config"]["value"] == expected_json
        assert proxy["stat_prefix"] == name
        routes[name] = proxy["cluster"]
    assert routes == {"orders-kafka": "kafka-main", "orders-kafka-node-1": "kafka-main-node-1",
                      "orders-kafka-node-2": "kafka-main-node-2"}
    assert _endpoint(clusters["kafka-main"]) == {"address": "127.0.0.1", "port_value": 9092}
    assert _endpoint(clusters["kafka-main-node-1"]) == {"address": "127.0.0.1", "port_value": 9092}
    assert _endpoint(clusters["kafka-main-node-2"]) == {"address": "kafka-2.internal", "port_value": 9093}
    assert clusters["kafka-main-node-2"]["type"] == "STRICT_DNS" and clusters["kafka-main-node-1"]["type"] == "STATIC"
    assert "&id" not in render_yaml(spec)  # every listener has its own copy of the JSON, no YAML aliases


def test_xds_resources_are_the_static_render():
    spec = load_spec_text(TWO_NODES, native_check=False)
    static = render_bootstrap(spec)["static_resources"]
    res = spec_resources(spec)
    assert [resource_to_rendered(r) for r in res[LISTENER_TYPE]] == static["listeners"]
    assert [resource_to_rendered(r) for r in res[CLUSTER_TYPE]] == static["clusters"]
    assert [r.depends_on for r in res[LISTENER_TYPE]] == [
        {"kafka-main"}, {"kafka-main-node-1"}, {"kafka-main-node-2"}]


ADDRESSED = """\
version: 1
admin: {port: 9901}
brokers:
  - {name: km, protocol: kafka, address: "10.0.0.1:9092"}
  - {name: n, protocol: nats, address: "10.0.0.2:4222"}
listeners:
  - {name: k, protocol: kafka, port: 19092, broker: km}
  - {name: other, protocol: nats, port: 19096, broker: n}
"""


def test_render_discovers_nodes_of_a_broker_with_an_address(monkeypatch):
    asked = []

    def discover(address):
        asked.append(address)
        return [(4, "10.0.0.3", 9092), (0, "kafka-0.internal", 9092)]

    monkeypatch.setattr(bootstrap, "_discover", discover)
    spec = load_spec_text(ADDRESSED, source="spec.yaml", native_check=False)
    static = render_bootstrap(spec)["static_resources"]
    assert asked == [Address("10.0.0.1", 9092)]
    assert [x["name"] for x in static["listeners"]] == ["k", "k-node-0", "k-node-4", "other"]
    assert [c["name"] for c in static["clusters"]] == ["km", "km-node-0", "km-node-4", "n"]
    typed, _ = _filters(static["listeners"][0])
    assert typed["filter_config"]["value"]["nodes"] == [{"id": 0, "port": 19093}, {"id": 4, "port": 19097}]
    clusters = {c["name"]: c for c in static["clusters"]}
    assert _endpoint(clusters["km-node-0"]) == {"address": "kafka-0.internal", "port_value": 9092}
    assert _endpoint(clusters["km-node-4"]) == {"address": "10.0.0.3", "port_value": 9092}


def test_render_checks_node_ports_of_discovered_nodes(monkeypatch):
    """Node 3's default port 19092 + 1 + 3 = 19096 is the nats listener's; node 65535's is over 65535."""
    monkeypatch.setattr(bootstrap, "_discover", lambda address: [(3, "10.0.0.3", 9092), (65535, "10.0.0.4", 9092)])
    spec = load_spec_text(ADDRESSED, source="spec.yaml", native_check=False)
    with pytest.raises(SpecError) as exc:
        render_bootstrap(spec)
    assert [str(i) for i in exc.value.issues] == [
        "spec.yaml: listeners[0].kafka.node_ports: port 19096 of node 3 is also the port of listeners[1]",
        "spec.yaml: listeners[0].kafka.node_ports: node 65535 needs a port here: its default "
        "19092 + 1 + 65535 = 84628 is over 65535",
    ]


def test_render_discovery_failure_names_the_broker_nodes_and_address(monkeypatch):
    def refuse(address):
        from evmesh.kafka.discovery import KafkaDiscoveryError
        raise KafkaDiscoveryError(f"Kafka Metadata from {address}: Connection refused")

    monkeypatch.setattr(bootstrap, "_discover", refuse)
    spec = load_spec_text(ADDRESSED, source="spec.yaml", native_check=False)
    with pytest.raises(EvmeshError) as exc:
        render_bootstrap(spec)
    assert str(exc.value) == ("spec.yaml: brokers[0].nodes: cannot discover the nodes of broker km: Kafka Metadata "
                              "from 10.0.0.1:9092: Connection refused (or list them under nodes)")
    monkeypatch.setattr(bootstrap, "_discover", lambda address: [(1, "bad host", 9092)])
    with pytest.raises(EvmeshError) as exc:
        render_bootstrap(spec)
    assert str(exc.value) == ('spec.yaml: brokers[0].nodes: broker km at 10.0.0.1:9092 advertises node 1 at invalid '
                              'host "bad host" (list the nodes under nodes)')


def test_validation_never_discovers(monkeypatch):
    def no_network(address):
        raise AssertionError("validation must not touch the network")

    monkeypatch.setattr(bootstrap, "_discover", no_network)
    load_spec_text(ADDRESSED, native_check=False)
    # and render with the nodes given (as `evmesh run` does) does not ask either
    spec = load_spec_text(ADDRESSED, native_check=False)
    nodes = {"km": (KafkaNode(1, Address("10.0.0.1", 9092)),)}
    names = [x["name"] for x in render_bootstrap(spec, kafka_nodes=nodes)["static_resources"]["listeners"]]
    assert names == ["k", "k-node-1", "other"]


def test_cli_render_notes_the_default_node(tmp_path):
    from click.testing import CliRunner

    from evmesh.cli import cli

    result = CliRunner().invoke(cli, ["render", "--no-native-check", str(EXAMPLE)], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout.split("\n", 1)[1] == GOLDEN.read_text()
    assert result.stderr == ("note: broker kafka-main has no address; rendered at 127.0.0.1:9092 as node 1 "
                             "(evmesh run starts one)\n")


def test_cli_render_discovery_failure_is_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from evmesh.cli import cli
    from evmesh.kafka.discovery import KafkaDiscoveryError

    def refuse(address):
        raise KafkaDiscoveryError(f"Kafka Metadata from {address}: Connection refused")

    monkeypatch.setattr(bootstrap, "_discover", refuse)
    path = tmp_path / "spec.yaml"
    path.write_text(ADDRESSED)
    result = CliRunner().invoke(cli, ["render", "--no-native-check", str(path)], catch_exceptions=False)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (f"error: {path}: brokers[0].nodes: cannot discover the nodes of broker km: Kafka "
                             "Metadata from 10.0.0.1:9092: Connection refused (or list them under nodes)\n")


def test_xds_publish_reports_discovery_problems_and_pushes_nothing(monkeypatch):
    from evmesh.xds.cache import SnapshotCache
    from evmesh.xds.serve import SpecPublisher

    lines: list[str] = []
    publisher = SpecPublisher(SnapshotCache(), "evmesh", lines.append)
    spec = load_spec_text(ADDRESSED, source="spec.yaml", native_check=False)
    monkeypatch.setattr(bootstrap, "_discover", lambda address: [(3, "10.0.0.3", 9092)])
    assert publisher.publish(spec) is None
    assert lines == ["spec.yaml: listeners[0].kafka.node_ports: port 19096 of node 3 is also the port of "
                     "listeners[1]; not pushed"]
    monkeypatch.setattr(bootstrap, "_discover", lambda address: [(1, "10.0.0.3", 9092)])
    assert publisher.publish(spec) is not None
    assert lines[-1] == "snapshot 2 for node key evmesh: 3 listeners, 3 clusters"


def test_native_accepts_what_render_produces():
    """The built checker takes the kafka JSON as rendered: with nodes, and with "nodes": [] (validate time)."""
    from evmesh.errors import NativeLibraryMissing
    from evmesh.spec.native import checker

    try:
        native = checker()
    except NativeLibraryMissing as exc:
        pytest.fail(f"{exc} (this test needs the built libevmesh_check.so)", pytrace=False)
    example = load_spec(EXAMPLE, native_check=False).listeners[0]
    assert native.check("kafka", example.filter_json([1])) is None
    assert native.check("kafka", example.filter_json()) is None
    assert native.check("kafka", load_spec_text(TWO_NODES, native_check=False).listeners[0].filter_json([1, 2])) is None
    assert load_spec(EXAMPLE) == load_spec(EXAMPLE, native_check=False)
    too_long = {**example.filter_json(), "topics": [{"name": "g", "pattern": "a" * 250}]}
    assert native.check("kafka", too_long).startswith("topics[0].pattern: ")
