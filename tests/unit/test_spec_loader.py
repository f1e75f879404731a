"""The spec loader: models from good specs, exact `file:line: path: problem` lines from bad ones."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from evmesh import SpecError, load_spec, load_spec_data, load_spec_text
from evmesh.spec import Acl, AclRule, Address, NatsOptions, SubjectGroup

GOOD = """\
version: 1
admin: {port: 9901}
brokers:
  - name: nats-main
    protocol: nats
  - name: nats-ext
    protocol: nats
    address: 10.0.0.7:4222
listeners:
  - name: orders
    protocol: nats
    port: 14222
    broker: nats-main
    nats:
      max_payload: 65536
      acl:
        publish: {allow: ["orders.>"], deny: ["orders.secret.>"]}
        subscribe: {allow: []}
      subjects: [{name: orders, pattern: "orders.*"}]
  - name: billing
    protocol: nats
    port: 14223
    bind: 0.0.0.0
    broker: nats-ext
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(textwrap.dedent(text), source="spec.yaml", native_check=False)
    return [str(i) for i in info.value.issues]


def with_listener(nats_block: str) -> str:
    """GOOD's first listener with its nats block (indented 6) replaced; the block starts on line 15."""
    head = GOOD.split("    nats:\n")[0] + "    nats:\n"
    tail = "  - name: billing" + GOOD.split("  - name: billing")[1]
    return head + textwrap.indent(textwrap.dedent(nats_block), "      ") + tail


def test_good_spec_models():
    spec = load_spec_text(GOOD, source="spec.yaml", native_check=False)
    assert spec.admin.port == 9901
    assert [b.name for b in spec.brokers] == ["nats-main", "nats-ext"]
    assert spec.brokers[0].embedded and spec.brokers[1].address == Address("10.0.0.7", 4222)
    orders, billing = spec.listeners
    assert orders.bind == "127.0.0.1" and billing.bind == "0.0.0.0"
    assert orders.nats == NatsOptions(
        max_payload=65536,
        acl=Acl(publish=AclRule(allow=("orders.>",), deny=("orders.secret.>",)), subscribe=AclRule(allow=())),
        subjects=(SubjectGroup("orders", "orders.*"),),
    )
    assert billing.nats is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.admin.port = 1  # type: ignore[misc]


def test_filter_json_maps_one_to_one():
    spec = load_spec_text(GOOD, native_check=False)
    assert spec.listeners[0].filter_json() == {
        "stat_prefix": "orders",
        "max_payload": 65536,
        "acl": {"publish": {"allow": ["orders.>"], "deny": ["orders.secret.>"]}, "subscribe": {"allow": []}},
        "subjects": [{"name": "orders", "pattern": "orders.*"}],
    }
    assert spec.listeners[1].filter_json() == {"stat_prefix": "billing"}


def test_defaults():
    spec = load_spec_data(
        {"version": 1, "brokers": [{"name": "b", "protocol": "nats"}],
         "listeners": [{"name": "l", "protocol": "nats", "port": 1, "broker": "b"}]},
        native_check=False,
    )
    assert spec.admin.port == 9901 and spec.listeners[0].bind == "127.0.0.1"


def test_ipv6_and_hostname_addresses():
    text = GOOD.replace("10.0.0.7:4222", "'[::1]:4222'")
    assert load_spec_text(text, native_check=False).brokers[1].address == Address("::1", 4222)
    text = GOOD.replace("10.0.0.7:4222", "nats.internal:4222")
    assert load_spec_text(text, native_check=False).brokers[1].address == Address("nats.internal", 4222)


def test_load_spec_from_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD.replace("port: 14223", "port: 70000"))
    with pytest.raises(SpecError) as info:
        load_spec(path, native_check=False)
    assert str(info.value) == f"{path}:22: listeners[1].port: 70000 is out of range 1..65535"


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("", ["spec.yaml: empty spec: expected a mapping with version, brokers and listeners"], id="empty"),
        pytest.param("- 1\n", ["spec.yaml:1: expected a mapping, got a list"], id="root-list"),
        pytest.param(
            "version: 1\nbrokers: [\n", ["spec.yaml:3: YAML syntax error: while parsing a flow node expected the node content, but found '<stream end>'"],
            id="yaml-syntax",
        ),
        pytest.param(
            "version: 2\nbrokers: []\nlisteners: []\n",
            ["spec.yaml:1: version: unsupported spec version 2 (supported: 1)",
             "spec.yaml:3: listeners: expected at least one listener"],
            id="version-and-empty-listeners",
        ),
        pytest.param(
            "version: 1\nbrokrs: []\n",
            ['spec.yaml:1: missing required key "brokers"',
             'spec.yaml:1: missing required key "listeners"',
             'spec.yaml:2: brokrs: unknown key (did you mean "brokers"?)'],
            id="unknown-top-key",
        ),
        pytest.param(
            "version: 1\nversion: 1\nbrokers: {}\nlisteners: x\n",
            ["spec.yaml:2: version: duplicate key",
             "spec.yaml:3: brokers: expected a list, got a mapping",
             "spec.yaml:4: listeners: expected a list, got a string"],
            id="types",
        ),
        pytest.param(
            "version: '1'\n1: x\nbrokers: []\nlisteners: [{}]\n",
            ["spec.yaml:1: version: expected an integer, got a string",
             "spec.yaml:2: keys must be strings, got an integer",
             'spec.yaml:4: listeners[0]: missing required key "name"',
             'spec.yaml:4: listeners[0]: missing required key "protocol"',
             'spec.yaml:4: listeners[0]: missing required key "port"',
             'spec.yaml:4: listeners[0]: missing required key "broker"'],
            id="required-listener-keys",
        ),
    ],
)
def test_document_level_problems(text, expected):
    assert problems(text) == expected


def test_admin_port():
    assert problems(GOOD.replace("admin: {port: 9901}", "admin: {port: -1, address: x}")) == [
        "spec.yaml:2: admin.port: -1 is out of range 0..65535",
        'spec.yaml:2: admin.address: unknown key',
    ]
    assert problems(GOOD.replace("admin: {port: 9901}", "admin: {port: 14222}")) == [
        "spec.yaml:12: listeners[0].port: port 14222 is the admin port",
    ]


def test_admin_port_zero_means_pick_free():
    assert load_spec_text(GOOD.replace("port: 9901", "port: 0"), native_check=False).admin.port == 0


def test_broker_problems():
    text = GOOD.replace(
        "  - name: nats-ext\n    protocol: nats\n    address: 10.0.0.7:4222\n",
        "  - name: nats-ext\n    protocol: kafka\n    address: 10.0.0.7\n"
        "  - name: nats-main\n    protocol: nats\n    adress: x:1\n"
        "  - name: bad name\n    protocol: natz\n    address: 'host with space:1'\n"
        "  - name: p\n    protocol: nats\n    address: 127.0.0.1:0\n"
        "  - nats\n",
    )
    assert problems(text) == [
        'spec.yaml:8: brokers[1].address: expected "host:port", got "10.0.0.7"',
        'spec.yaml:9: brokers[2].name: duplicate broker name "nats-main" (also brokers[0])',
        'spec.yaml:11: brokers[2].adress: unknown key (did you mean "address"?)',
        'spec.yaml:12: brokers[3].name: invalid name "bad name": use 1-64 of A-Z a-z 0-9 _ -',
        'spec.yaml:13: brokers[3].protocol: unknown protocol "natz" (supported: nats, amqp, kafka)',
        'spec.yaml:14: brokers[3].address: invalid host "host with space"',
        "spec.yaml:17: brokers[4].address: port 0 is out of range 1..65535",
        "spec.yaml:18: brokers[5]: expected a mapping, got a string",
    ]


def test_listener_problems():
    text = GOOD.replace("    port: 14223\n    bind: 0.0.0.0\n    broker: nats-ext\n",
                        "    port: 14222\n    bind: localhost\n    broker: nats-mian\n    kafka: {}\n    prot: 1\n")
    text = text.replace("  - name: billing\n    protocol: nats\n", "  - name: orders\n    protocol: amqp\n")
    assert problems(text) == [
        'spec.yaml:20: listeners[1].name: duplicate listener name "orders" (also listeners[0])',
        "spec.yaml:22: listeners[1].port: duplicate listener port 14222 (also listeners[0])",
        'spec.yaml:23: listeners[1].bind: expected an IP address, got "localhost"',
        'spec.yaml:25: listeners[1].kafka: "kafka" options on a amqp listener',
        'spec.yaml:26: listeners[1].prot: unknown key (did you mean "port"?)',
    ]


def test_listener_broker_reference():
    text = GOOD.replace("    broker: nats-ext\n", "    broker: nats-mian\n")
    assert problems(text) == ['spec.yaml:24: listeners[1].broker: unknown broker "nats-mian" (did you mean "nats-main"?)']


def test_listener_port_types():
    text = GOOD.replace("port: 14222", "port: '14222'").replace("port: 14223", "port: 1.5")
    assert problems(text) == [
        "spec.yaml:12: listeners[0].port: expected an integer, got a string",
        "spec.yaml:22: listeners[1].port: expected an integer, got a number",
    ]


def test_nats_limits_and_types():
    text = with_listener("""\
        max_payload: true
        max_control_line: 31
        extra: 1
        subjects: {}
    """)
    assert problems(text) == [
        "spec.yaml:15: listeners[0].nats.max_payload: expected an integer, got a boolean",
        "spec.yaml:16: listeners[0].nats.max_control_line: 31 is out of range 32..1048576",
        "spec.yaml:17: listeners[0].nats.extra: unknown key",
        "spec.yaml:18: listeners[0].nats.subjects: expected a list, got a mapping",
    ]


def test_nats_limit_upper_bounds():
    text = with_listener("max_payload: 67108865\nmax_control_line: 1048577\n")
    assert problems(text) == [
        "spec.yaml:15: listeners[0].nats.max_payload: 67108865 is out of range 1..67108864",
        "spec.yaml:16: listeners[0].nats.max_control_line: 1048577 is out of range 32..1048576",
    ]


def test_acl_subject_patterns():
    text = with_listener("""\
        acl:
          publish:
            allow:
              - orders.>
              - a..b
              - a.>.b
              - "a b"
              - foo*
              - ">x"
              - ""
              - 7
            deny: orders
          subscribe: {allow: [".a", "a."], denied: []}
          request: {}
    """)
    assert problems(text) == [
        'spec.yaml:19: listeners[0].nats.acl.publish.allow[1]: invalid subject pattern "a..b": empty token',
        "spec.yaml:20: listeners[0].nats.acl.publish.allow[2]: invalid subject pattern \"a.>.b\": '>' must be the last token",
        'spec.yaml:21: listeners[0].nats.acl.publish.allow[3]: invalid subject pattern "a b": contains whitespace',
        "spec.yaml:22: listeners[0].nats.acl.publish.allow[4]: invalid subject pattern \"foo*\": '*' must be a whole token",
        "spec.yaml:23: listeners[0].nats.acl.publish.allow[5]: invalid subject pattern \">x\": '>' must be a whole token",
        "spec.yaml:24: listeners[0].nats.acl.publish.allow[6]: must not be empty",
        "spec.yaml:25: listeners[0].nats.acl.publish.allow[7]: expected a string, got an integer",
        "spec.yaml:26: listeners[0].nats.acl.publish.deny: expected a list, got a string",
        'spec.yaml:27: listeners[0].nats.acl.subscribe.allow[0]: invalid subject pattern ".a": empty token',
        'spec.yaml:27: listeners[0].nats.acl.subscribe.allow[1]: invalid subject pattern "a.": empty token',
        'spec.yaml:27: listeners[0].nats.acl.subscribe.denied: unknown key (did you mean "deny"?)',
        'spec.yaml:28: listeners[0].nats.acl.request: unknown key',
    ]


def test_subject_groups():
    text = with_listener("""\
        subjects:
          - {name: orders, pattern: "orders.>"}
          - {name: orders, pattern: "x"}
          - {name: other, pattern: "y"}
          - {name: "a.b", pattern: "z..z"}
          - {name: g, patern: q}
          - g
    """)
    assert problems(text) == [
        'spec.yaml:17: listeners[0].nats.subjects[1].name: duplicate subject group "orders" (also listeners[0].nats.subjects[0])',
        'spec.yaml:18: listeners[0].nats.subjects[2].name: "other" is reserved for subjects that match no group',
        'spec.yaml:19: listeners[0].nats.subjects[3].name: invalid name "a.b": use 1-64 of A-Z a-z 0-9 _ -',
        'spec.yaml:19: listeners[0].nats.subjects[3].pattern: invalid subject pattern "z..z": empty token',
        'spec.yaml:20: listeners[0].nats.subjects[4]: missing required key "pattern"',
        'spec.yaml:20: listeners[0].nats.subjects[4].patern: unknown key (did you mean "pattern"?)',
        "spec.yaml:21: listeners[0].nats.subjects[5]: expected a mapping, got a string",
    ]


def test_too_many_subject_groups():
    groups = "".join(f"  - {{name: g{i}, pattern: s{i}}}\n" for i in range(65))
    assert problems(with_listener("subjects:\n" + groups)) == [
        "spec.yaml:16: listeners[0].nats.subjects: at most 64 subject groups, got 65",
    ]


def test_all_problems_are_collected_across_sections():
    text = GOOD.replace("version: 1", "version: 3").replace("10.0.0.7:4222", "10.0.0.7:x").replace("orders.*", "orders.**")
    assert problems(text) == [
        "spec.yaml:1: version: unsupported spec version 3 (supported: 1)",
        'spec.yaml:8: brokers[1].address: expected "host:port", got "10.0.0.7:x"',
        "spec.yaml:19: listeners[0].nats.subjects[0].pattern: invalid subject pattern \"orders.**\": '*' must be a whole token",
    ]
