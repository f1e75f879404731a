"""Snapshot cache and spec -> xDS resources: consistency checks before publishing, one render for
static and xDS output, the spec watcher's reload and bad-edit reporting, `render --xds`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evmesh import SpecError, load_spec, render_bootstrap
from evmesh.cli import cli
from evmesh.render.bootstrap import ADS_CLUSTER, render_ads_bootstrap
from evmesh.testing.xds import xds_cluster as cluster
from evmesh.testing.xds import xds_tcp_listener as listener
from evmesh.xds import (
    CLUSTER_TYPE,
    LISTENER_TYPE,
    InconsistentSnapshot,
    Snapshot,
    SnapshotCache,
    SpecWatcher,
    resource_to_rendered,
    snapshot_from_spec,
    spec_resources,
)
from evmesh.xds.resources import TYPED_STRUCT

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "envoy_configs" / "nats-example.yaml"


def test_spec_resources_are_the_static_render():
    spec = load_spec(EXAMPLE, native_check=False)
    static = render_bootstrap(spec)["static_resources"]
    res = spec_resources(spec)
    assert [resource_to_rendered(r) for r in res[LISTENER_TYPE]] == static["listeners"]
    assert [resource_to_rendered(r) for r in res[CLUSTER_TYPE]] == static["clusters"]
    (lst,) = res[LISTENER_TYPE]
    assert lst.depends_on == {"nats-main"}
    # the dynamic-module filter travels as a TypedStruct (xds-protos has no class for it)
    assert lst.message.filter_chains[0].filters[0].typed_config.type_url == TYPED_STRUCT


def test_versions_are_content_hashes():
    spec = load_spec(EXAMPLE, native_check=False)
    a, b = snapshot_from_spec(spec, "1"), snapshot_from_spec(spec, "2")
    assert a.versions == b.versions
    other = Snapshot({CLUSTER_TYPE: [cluster("nats-main", 4333)], LISTENER_TYPE: list(a.get(LISTENER_TYPE).values())})
    assert other.version(CLUSTER_TYPE) != a.version(CLUSTER_TYPE)
    assert other.version(LISTENER_TYPE) == a.version(LISTENER_TYPE)


def test_consistency_check_refuses_before_publishing():
    cache = SnapshotCache()
    good = Snapshot({CLUSTER_TYPE: [cluster("c1")], LISTENER_TYPE: [listener("l1", 15001, "c1")]}, "1")
    cache.set_snapshot("evmesh", good)
    bad = Snapshot({
        CLUSTER_TYPE: [cluster("c1"), cluster("c1", 4333)],
        LISTENER_TYPE: [listener("l1", 15001, "nope"), listener("l2", 15001, "c1")],
    }, "2")
    seen = []
    cache.watch("evmesh", seen.append)
    with pytest.raises(InconsistentSnapshot) as err:
        cache.set_snapshot("evmesh", bad)
    assert err.value.problems == [
        "CDS: duplicate name 'c1'",
        "LDS l1: tcp_proxy cluster 'nope' is not in the snapshot's clusters",
        "LDS l2: address 127.0.0.1:15001 is already used by l1",
    ]
    assert cache.get_snapshot("evmesh") is good and seen == []


def test_cache_keys_by_cluster_or_id_and_notifies_watchers():
    from envoy.config.core.v3 import base_pb2

    node = base_pb2.Node(id="a-1", cluster="svc")
    assert SnapshotCache().node_key(node) == "svc"
    assert SnapshotCache("id").node_key(node) == "a-1"
    with pytest.raises(ValueError):
        SnapshotCache("zone")
    cache = SnapshotCache()
    seen = []
    cancel = cache.watch("svc", seen.append)
    s = Snapshot({CLUSTER_TYPE: [cluster("c")]}, "1")
    cache.set_snapshot("svc", s)
    cache.set_snapshot("other", s)
    cancel()
    cache.set_snapshot("svc", s)
    assert seen == [s] and cache.keys() == ["other", "svc"]


def test_spec_watcher_reloads_on_change_and_reports_bad_edits(tmp_path):
    path = tmp_path / "spec.yaml"
    text = EXAMPLE.read_text()
    path.write_text(text)
    w = SpecWatcher(path, native_check=False)
    first = w.poll()
    assert first is not None and w.poll() is None
    path.write_text(text.replace("port: 14222", 'port: "x"'))
    os.utime(path, ns=(1, 1))
    with pytest.raises(SpecError) as err:
        w.poll()
    assert [str(i) for i in err.value.issues] == [f"{path}:13: listeners[0].port: expected an integer, got a string"]
    assert w.poll() is None  # reported once
    path.write_text(text.replace("port: 14222", "port: 14223"))
    os.utime(path, ns=(2, 2))
    assert w.poll().listeners[0].port == 14223
    path.write_text(text.replace("port: 14222", "port: 14223"))  # touched, same bytes
    os.utime(path, ns=(3, 3))
    assert w.poll() is None


def test_render_ads_bootstrap_has_only_admin_node_and_ads():
    spec = load_spec(EXAMPLE, native_check=False)
    boot = render_ads_bootstrap(spec, "127.0.0.1:18000", "side-1", "svc", "delta")
    assert sorted(boot) == ["admin", "dynamic_resources", "node", "static_resources"]
    assert boot["node"] == {"id": "side-1", "cluster": "svc"}
    dyn = boot["dynamic_resources"]
    assert dyn["ads_config"]["api_type"] == "DELTA_GRPC" and dyn["ads_config"]["transport_api_version"] == "V3"
    assert dyn["cds_config"] == dyn["lds_config"] == {"ads": {}, "resource_api_version": "V3"}
    (ads,) = boot["static_resources"]["clusters"]
    assert ads["name"] == ADS_CLUSTER and "http2_protocol_options" in str(ads["typed_extension_protocol_options"])


def test_cli_render_xds_is_accepted_by_envoy(tmp_path):
    out = tmp_path / "ads.yaml"
    r = CliRunner().invoke(cli, ["render", str(EXAMPLE), "--xds", "127.0.0.1:18000", "--node-id", "n1",
                                 "--node-cluster", "svc", "--xds-api", "delta", "--check", "-o", str(out)])
    assert r.exit_code == 0, r.output
    boot = yaml.safe_load(out.read_text())
    assert boot["node"] == {"id": "n1", "cluster": "svc"} and "listeners" not in boot["static_resources"]
    bad = CliRunner().invoke(cli, ["render", str(EXAMPLE), "--xds", "nohost"])
    assert bad.exit_code == 2 and bad.output.strip().splitlines() == ['error: xDS server address "nohost" is not host:port']


def test_xds_serve_start_up_errors_are_one_line(tmp_path):
    import socket
    import subprocess
    import sys

    evmesh = Path(sys.prefix) / "bin" / "evmesh"
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nbrokers: []\n")
    r = subprocess.run([evmesh, "xds", "serve", bad], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stderr.splitlines()) == (2, [f'{bad}:1: missing required key "listeners"'])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([evmesh, "xds", "serve", EXAMPLE, "--port", str(port), "--no-native-check"],
                           capture_output=True, text=True, timeout=30)
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert lines[-1].startswith(f"error: cannot serve on 127.0.0.1:{port}: Failed to bind"), lines
    assert len([x for x in lines if "error" in x.lower()]) == 1, lines


ADS_GOLDEN = REPO / "envoy_configs" / "nats-example.ads.envoy.yaml"


def test_render_xds_golden():
    """Regenerate after an intended change with: EVMESH_UPDATE_GOLDEN=1 pytest tests/unit/test_xds_cache.py"""
    r = CliRunner().invoke(cli, ["render", str(EXAMPLE), "--xds", "127.0.0.1:18000"])
    assert r.exit_code == 0, r.output
    if os.environ.get("EVMESH_UPDATE_GOLDEN"):
        ADS_GOLDEN.write_text(r.output)
    assert r.output == ADS_GOLDEN.read_text()
