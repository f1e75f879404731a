"""Rendering: the golden example, determinism, and the shape the C++ side expects."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from evmesh import load_spec, load_spec_data, render_bootstrap, render_yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "envoy_configs" / "nats-example.yaml"
GOLDEN = REPO / "envoy_configs" / "nats-example.envoy.yaml"
EMBEDDED = {"nats-main": "127.0.0.1:4222"}


def test_golden_render_is_byte_identical():
    """Regenerate after an intended change with: EVMESH_UPDATE_GOLDEN=1 pytest tests/unit/test_render.py"""
    text = render_yaml(load_spec(EXAMPLE, native_check=False), EMBEDDED)
    if os.environ.get("EVMESH_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_render_without_embedded_address_notes_the_default():
    text = render_yaml(load_spec(EXAMPLE, native_check=False))
    first, rest = text.split("\n", 1)
    assert first == "# broker nats-main has no address: rendered at 127.0.0.1:4222 (`evmesh run` starts an embedded nats broker instead)"
    assert rest == GOLDEN.read_text()


def spec_data(**admin):
    return {
        "version": 1,
        "admin": admin or {"port": 9901},
        "brokers": [
            {"name": "zeta", "protocol": "nats", "address": "10.1.2.3:4222"},
            {"name": "alpha", "protocol": "nats", "address": "nats.internal:4333"},
            {"name": "embedded", "protocol": "nats"},
        ],
        "listeners": [
            {"name": "z-listener", "protocol": "nats", "port": 15000, "broker": "zeta", "bind": "0.0.0.0"},
            {"name": "a-listener", "protocol": "nats", "port": 15001, "broker": "alpha",
             "nats": {"acl": {"publish": {"allow": []}}}},
        ],
    }


def test_bootstrap_shape_sorted_and_deterministic():
    spec = load_spec_data(spec_data(), native_check=False)
    boot = render_bootstrap(spec, {"embedded": "127.0.0.1:40000"})
    assert boot["admin"] == {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}}
    listeners = boot["static_resources"]["listeners"]
    clusters = boot["static_resources"]["clusters"]
    assert [x["name"] for x in listeners] == ["a-listener", "z-listener"]
    assert [c["name"] for c in clusters] == ["alpha", "embedded", "zeta"]

    a, z = listeners
    assert z["address"] == {"socket_address": {"address": "0.0.0.0", "port_value": 15000}}
    evmesh_filter, tcp_proxy = a["filter_chains"][0]["filters"]
    assert evmesh_filter["name"] == "evmesh.nats"
    typed = evmesh_filter["typed_config"]
    assert typed["dynamic_module_config"] == {"name": "evmesh", "do_not_close": True, "metrics_namespace": "evmesh"}
    assert typed["filter_name"] == "nats"
    assert typed["filter_config"] == {
        "@type": "type.googleapis.com/google.protobuf.Struct",
        "value": {"stat_prefix": "a-listener", "acl": {"publish": {"allow": []}}},
    }
    assert tcp_proxy["name"] == "envoy.filters.network.tcp_proxy"
    assert tcp_proxy["typed_config"]["stat_prefix"] == "a-listener"
    assert tcp_proxy["typed_config"]["cluster"] == "alpha"

    alpha, embedded, zeta = clusters
    assert alpha["type"] == "STRICT_DNS" and zeta["type"] == "STATIC" and embedded["type"] == "STATIC"
    assert zeta["connect_timeout"] == "5s"
    endpoint = embedded["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint == {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 40000}}}

    again = render_yaml(load_spec_data(spec_data(), native_check=False), {"embedded": "127.0.0.1:40000"})
    assert render_yaml(spec, {"embedded": "127.0.0.1:40000"}) == again
    assert yaml.safe_load(again) == boot


def test_admin_port_override_for_port_zero():
    spec = load_spec_data(spec_data(port=0), native_check=False)
    assert render_bootstrap(spec)["admin"]["address"]["socket_address"]["port_value"] == 0
    assert render_bootstrap(spec, admin_port=23456)["admin"]["address"]["socket_address"]["port_value"] == 23456
