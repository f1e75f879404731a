"""AMQP in the mesh spec: the `amqp:` block maps 1:1 to the filter JSON, Python-side checks with YAML
paths and lines, the C++ checker as the final word, and the golden render of the example."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from evmesh import SpecError, load_spec, load_spec_text, render_bootstrap, render_yaml
from evmesh.errors import NativeLibraryMissing
from evmesh.spec import AmqpOptions, PublishRule, ThrottleRule, topic_pattern_problem
from evmesh.spec.native import checker
from evmesh.xds.resources import CLUSTER_TYPE, LISTENER_TYPE, TYPED_STRUCT, resource_to_rendered, spec_resources

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "envoy_configs" / "amqp-example.yaml"
GOLDEN = REPO / "envoy_configs" / "amqp-example.envoy.yaml"
EMBEDDED = {"rabbit-main": "127.0.0.1:5672"}


def problems(text: str, native_check: bool = False) -> list[str]:
    with pytest.raises(SpecError) as exc:
        load_spec_text(textwrap.dedent(text), source="spec.yaml", native_check=native_check)
    return [str(i) for i in exc.value.issues]


def spec_text(amqp_block: str, protocol: str = "amqp") -> str:
    head = textwrap.dedent(f"""\
        version: 1
        brokers:
          - name: rmq
            protocol: amqp
        listeners:
          - name: orders
            protocol: {protocol}
            port: 5673
            broker: rmq
        """)
    return head + textwrap.indent(textwrap.dedent(amqp_block), "    ")


@pytest.fixture
def native():
    try:
        return checker()
    except NativeLibraryMissing as exc:
        pytest.fail(f"{exc} (these tests need the built libevmesh_check.so)", pytrace=False)


def test_example_filter_json_is_one_to_one():
    spec = load_spec(EXAMPLE, native_check=False)
    (broker,) = spec.brokers
    assert broker.protocol == "amqp" and broker.embedded
    (lst,) = spec.listeners
    assert lst.filter_json() == {
        "stat_prefix": "orders-amqp",
        "max_frame": 131072,
        "max_body_size": 1048576,
        "acl": {
            "publish": {
                "allow": [{"exchange": "orders"}, {"exchange": "", "routing_key": "work.#"}],
                "deny": [{"exchange": "orders", "routing_key": "eu.secret.#"}],
            },
            "consume": {"allow": ["work.#", "orders.#"], "deny": ["work.admin"]},
        },
        "exchanges": [
            {"name": "orders_eu", "exchange": "orders", "routing_key": "eu.#"},
            {"name": "orders", "exchange": "orders"},
            {"name": "default", "exchange": ""},
        ],
        "queues": [{"name": "work", "pattern": "work.#"}, {"name": "orders", "pattern": "orders.#"}],
        "throttle": [{"exchange": "orders", "messages_per_second": 5000, "bytes_per_second": 16777216}],
    }


def test_absent_block_and_absent_keys_stay_absent():
    spec = load_spec_text(spec_text(""), native_check=False)
    assert spec.listeners[0].amqp is None
    assert spec.listeners[0].filter_json() == {"stat_prefix": "orders"}
    spec = load_spec_text(spec_text("""\
        amqp:
          acl: {publish: {allow: []}, consume: {deny: []}}
          throttle: [{exchange: "*", bytes_per_second: 1000}]
        """), native_check=False)
    opts = spec.listeners[0].amqp
    assert opts == AmqpOptions(acl=opts.acl, throttle=(ThrottleRule("*", bytes_per_second=1000),))
    assert spec.listeners[0].filter_json() == {
        "stat_prefix": "orders",
        "acl": {"publish": {"allow": []}, "consume": {"deny": []}},
        "throttle": [{"exchange": "*", "bytes_per_second": 1000}],
    }
    assert PublishRule("x").to_json() == {"exchange": "x"}


def test_golden_render_is_byte_identical():
    """Regenerate after an intended change with: EVMESH_UPDATE_GOLDEN=1 pytest tests/unit/test_spec_amqp.py"""
    text = render_yaml(load_spec(EXAMPLE, native_check=False), EMBEDDED)
    if os.environ.get("EVMESH_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_render_without_embedded_address_notes_the_default_port():
    text = render_yaml(load_spec(EXAMPLE, native_check=False))
    first, rest = text.split("\n", 1)
    assert first == ("# broker rabbit-main has no address: rendered at 127.0.0.1:5672 "
                     "(`evmesh run` starts an embedded amqp broker instead)")
    assert rest == GOLDEN.read_text()


def test_render_shape_is_the_nats_shape():
    spec = load_spec(EXAMPLE, native_check=False)
    (lst,) = render_bootstrap(spec, EMBEDDED)["static_resources"]["listeners"]
    evmesh_filter, tcp_proxy = lst["filter_chains"][0]["filters"]
    assert evmesh_filter["name"] == "evmesh.amqp"
    assert evmesh_filter["typed_config"]["filter_name"] == "amqp"
    assert evmesh_filter["typed_config"]["dynamic_module_config"] == {
        "name": "evmesh", "do_not_close": True, "metrics_namespace": "evmesh"}
    assert evmesh_filter["typed_config"]["filter_config"]["value"] == spec.listeners[0].filter_json()
    assert tcp_proxy["name"] == "envoy.filters.network.tcp_proxy"
    assert tcp_proxy["typed_config"]["stat_prefix"] == "orders-amqp"
    assert tcp_proxy["typed_config"]["cluster"] == "rabbit-main"


def test_xds_resources_are_the_static_render():
    spec = load_spec(EXAMPLE, native_check=False)
    static = render_bootstrap(spec)["static_resources"]
    res = spec_resources(spec)
    assert [resource_to_rendered(r) for r in res[LISTENER_TYPE]] == static["listeners"]
    assert [resource_to_rendered(r) for r in res[CLUSTER_TYPE]] == static["clusters"]
    (lst,) = res[LISTENER_TYPE]
    assert lst.depends_on == {"rabbit-main"}
    assert lst.message.filter_chains[0].filters[0].typed_config.type_url == TYPED_STRUCT


@pytest.mark.parametrize("pattern, problem", [
    ("a.b", None), ("#", None), ("*.x.#", None), ("", None), ("a..b", None),
    ("a.b*", "'*' and '#' must be whole words"), ("#x", "'*' and '#' must be whole words"),
    ("x" * 256, "longer than 255 bytes (256)"), ("é" * 128, "longer than 255 bytes (256)"),
])
def test_topic_patterns(pattern, problem):
    assert topic_pattern_problem(pattern) == problem


def test_amqp_block_problems_name_path_and_line():
    text = spec_text("""\
        amqp:
          max_frame: 1024
          max_body_size: "1"
          acl:
            publish:
              allow:
                - {exchange: orders, routing_key: "eu.x#"}
                - {routing_key: "a"}
              deny: {exchange: x}
            consume: {allow: ["work.*", 7], deny: ["a.b#"]}
            subscribe: {}
          exchanges:
            - {name: other, exchange: orders}
            - {name: eu, exchange: orders, routing_key: "#"}
            - {name: eu, exchange: orders, bogus: 1}
          queues:
            - {name: work}
            - {name: "bad name", pattern: "work.#"}
          throttle:
            - {exchange: orders, messages_per_second: 0}
            - {exchange: orders, bytes_per_second: 10}
            - {exchange: "*"}
          max_payload: 1
        """)
    assert problems(text) == [
        "spec.yaml:11: listeners[0].amqp.max_frame: 1024 is out of range 4096..16777216",
        "spec.yaml:12: listeners[0].amqp.max_body_size: expected an integer, got a string",
        'spec.yaml:16: listeners[0].amqp.acl.publish.allow[0].routing_key: invalid pattern "eu.x#": '
        "'*' and '#' must be whole words",
        'spec.yaml:17: listeners[0].amqp.acl.publish.allow[1]: missing required key "exchange"',
        "spec.yaml:18: listeners[0].amqp.acl.publish.deny: expected a list, got a mapping",
        "spec.yaml:19: listeners[0].amqp.acl.consume.allow[1]: expected a string, got an integer",
        'spec.yaml:19: listeners[0].amqp.acl.consume.deny[0]: invalid pattern "a.b#": '
        "'*' and '#' must be whole words",
        'spec.yaml:20: listeners[0].amqp.acl.subscribe: unknown key',
        'spec.yaml:22: listeners[0].amqp.exchanges[0].name: "other" is reserved for publishes that match no group',
        'spec.yaml:24: listeners[0].amqp.exchanges[2].name: duplicate group name "eu" (also listeners[0].amqp.exchanges[1])',
        "spec.yaml:24: listeners[0].amqp.exchanges[2].bogus: unknown key",
        'spec.yaml:26: listeners[0].amqp.queues[0]: missing required key "pattern"',
        'spec.yaml:27: listeners[0].amqp.queues[1].name: invalid name "bad name": use 1-64 of A-Z a-z 0-9 _ -',
        "spec.yaml:29: listeners[0].amqp.throttle[0].messages_per_second: 0 is out of range 1..10000000",
        'spec.yaml:30: listeners[0].amqp.throttle[1].exchange: duplicate throttle rule for exchange "orders" '
        "(also listeners[0].amqp.throttle[0])",
        "spec.yaml:31: listeners[0].amqp.throttle[2]: needs messages_per_second or bytes_per_second",
        'spec.yaml:32: listeners[0].amqp.max_payload: unknown key',
    ]


def test_group_and_rule_caps():
    groups = "\n".join(f"    - {{name: g{i}, pattern: q{i}}}" for i in range(65))
    text = spec_text("amqp:\n  queues:\n" + groups + "\n")
    assert problems(text) == ["spec.yaml:12: listeners[0].amqp.queues: at most 64 queue groups, got 65"]


def test_protocol_mismatches_and_unknown_protocols():
    text = textwrap.dedent("""\
        version: 1
        brokers:
          - {name: rmq, protocol: amqp}
          - {name: nats-main, protocol: nats}
          - {name: k, protocol: kafka}
          - {name: m, protocol: mqtt}
        listeners:
          - {name: a, protocol: amqp, port: 5673, broker: nats-main}
          - {name: b, protocol: nats, port: 5674, broker: rmq, amqp: {}}
          - {name: c, protocol: amqp, port: 5675, broker: rmq, nats: {}}
        """)
    assert problems(text) == [
        'spec.yaml:6: brokers[3].protocol: unknown protocol "mqtt" (supported: nats, amqp, kafka)',
        "spec.yaml:8: listeners[0].broker: broker \"nats-main\" speaks nats, this listener amqp",
        'spec.yaml:9: listeners[1].broker: broker "rmq" speaks amqp, this listener nats',
        'spec.yaml:9: listeners[1].amqp: "amqp" options on a nats listener',
        'spec.yaml:10: listeners[2].nats: "nats" options on a amqp listener',
    ]


def test_native_accepts_the_example(native):
    spec = load_spec(EXAMPLE, native_check=False)
    assert native.check("amqp", spec.listeners[0].filter_json()) is None
    assert load_spec(EXAMPLE) == spec


def test_python_caps_match_the_native_ones(native):
    """The Python checks say what the C++ parser would say, at the YAML path and line."""
    rules = ", ".join(f'"q{i}"' for i in range(1025))
    text = spec_text(f"amqp:\n  acl:\n    consume:\n      allow: [{rules}]\n")
    got = problems(text, native_check=True)
    assert got[0] == "spec.yaml:13: listeners[0].amqp.acl.consume.allow: at most 1024 patterns, got 1025"
    assert native.check("amqp", {"stat_prefix": "x", "acl": {"consume": {"allow": [f"q{i}" for i in range(1025)]}}}) \
        == "acl.consume.allow: too many patterns (max 1024)"


def test_native_problem_paths_map_into_the_amqp_block():
    from evmesh.spec.loader import native_problem_path

    assert native_problem_path(2, "amqp", "throttle[0].exchange: duplicate") == (
        "listeners[2].amqp.throttle[0].exchange", "duplicate")
    assert native_problem_path(0, "amqp", "stat_prefix: bad") == ("listeners[0].name", "bad")
    assert native_problem_path(0, "amqp", "(config): not an object") == ("listeners[0].amqp", "not an object")
