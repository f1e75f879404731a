"""A bad filter config pushed straight into Envoy (a hand-written bootstrap, no evmesh validation on the
way): Envoy refuses it with the module's message naming the field, and exits cleanly, never by a signal.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from evmesh.locate import envoy_binary, envoy_module_path
from evmesh.runtime.ports import free_port
from evmesh.runtime.process import ManagedProcess

DYNAMIC_MODULE_FILTER = "type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter"


def bootstrap(filter_config: Any, filter_name: str = "nats") -> dict[str, Any]:
    """An Envoy bootstrap written by hand: one listener with the evmesh filter and tcp_proxy."""
    def address(port: int) -> dict[str, Any]:
        return {"socket_address": {"address": "127.0.0.1", "port_value": port}}

    return {
        "admin": {"address": address(free_port())},
        "static_resources": {
            "listeners": [{
                "name": "bad",
                "address": address(free_port()),
                "filter_chains": [{"filters": [
                    {"name": "evmesh.nats", "typed_config": {
                        "@type": DYNAMIC_MODULE_FILTER,
                        "dynamic_module_config": {"name": "evmesh", "do_not_close": True, "metrics_namespace": "evmesh"},
                        "filter_name": filter_name,
                        "filter_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": filter_config},
                    }},
                    {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                        "stat_prefix": "bad", "cluster": "nats"}},
                ]}],
            }],
            "clusters": [{
                "name": "nats", "type": "STATIC", "connect_timeout": "5s",
                "load_assignment": {"cluster_name": "nats",
                                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(free_port())}}]}]},
            }],
        },
    }


def write(tmp_path: Path, boot: dict[str, Any]) -> Path:
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(boot, sort_keys=False))
    return path


def envoy_env() -> dict[str, str]:
    return dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=str(envoy_module_path().parent))


def crash_report(output: str) -> bool:
    """Envoy's fatal-signal handler prints "Caught <signal>, suspect faulting address ..." and a backtrace."""
    return "suspect faulting address" in output or "Backtrace (use" in output


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(path), "--base-id", str(free_port())],
                          env=envoy_env(), capture_output=True, text=True, timeout=60)


BAD = {
    "bad-publish-pattern": ({"stat_prefix": "bad", "acl": {"publish": {"allow": ["a..b"]}}},
                            'acl.publish.allow[0]: invalid subject pattern "a..b": empty token'),
    "bad-subscribe-pattern": ({"stat_prefix": "bad", "acl": {"subscribe": {"allow": [">"], "deny": ["ok", "a.>.b"]}}},
                              "acl.subscribe.deny[1]: invalid subject pattern \"a.>.b\": '>' must be the last token"),
    "misspelt-key": ({"stat_prefix": "bad", "acl": {"publish": {"alow": ["a"]}}},
                     "acl.publish.alow: unknown field (expected one of: allow, deny)"),
    "limit-out-of-range": ({"stat_prefix": "bad", "max_control_line": 1},
                           "max_control_line: must be between 32 and 1048576, got 1"),
    "group-named-other": ({"stat_prefix": "bad", "subjects": [{"name": "other", "pattern": "a.>"}]},
                          'subjects[0].name: must be 1-64 characters of [A-Za-z0-9_-] and not "other"'),
    "missing-stat-prefix": ({}, "stat_prefix: required"),
}


def test_the_hand_written_bootstrap_is_valid_with_a_good_config(tmp_path):
    proc = validate(write(tmp_path, bootstrap({"stat_prefix": "good", "acl": {"publish": {"allow": ["a.b"]}}})))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("config,message", BAD.values(), ids=BAD.keys())
def test_validate_rejects_with_the_field_path(tmp_path, config, message):
    proc = validate(write(tmp_path, bootstrap(config)))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # a clean error exit, not 0 and not a signal
    assert f"[error][dynamic_modules] [:] evmesh: nats filter_config rejected: {message}\n" in out, out
    assert "Failed to initialize dynamic module network filter config" in out
    assert not crash_report(out), out


def test_unknown_filter_name_is_rejected(tmp_path):
    proc = validate(write(tmp_path, bootstrap({"stat_prefix": "x"}, filter_name="natz")))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert 'evmesh: filter_name: unknown filter "natz" (known: nats' in out, out


def test_startup_with_a_bad_config_exits_cleanly(tmp_path):
    config, message = BAD["bad-publish-pattern"]
    path = write(tmp_path, bootstrap(config))
    envoy = ManagedProcess("envoy", [envoy_binary(), "-c", path, "--base-id", str(free_port()), "--log-level", "info"],
                           tmp_path / "envoy.log", env=envoy_env())
    try:
        deadline = time.monotonic() + 30
        while envoy.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not envoy.alive(), "Envoy kept running on a config the module rejects"
    finally:
        envoy.stop()
    log = envoy.log_text()
    assert envoy.returncode == 1, f"exit code {envoy.returncode} (negative: killed by a signal)\n{log}"
    assert f"evmesh: nats filter_config rejected: {message}" in log, log
    assert "Failed to initialize dynamic module network filter config" in log
    assert not crash_report(log), log
