"""`render --check`: the rendered bootstrap against the real Envoy binary with the real module."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evmesh import EvmeshError, check_bootstrap_file, load_spec, render_bootstrap
from evmesh.cli import cli
from evmesh.errors import NativeLibraryMissing
from evmesh.locate import envoy_module_path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "envoy_configs" / "nats-example.yaml"
GOLDEN = REPO / "envoy_configs" / "nats-example.envoy.yaml"


@pytest.fixture(autouse=True)
def module_built():
    try:
        envoy_module_path()
    except NativeLibraryMissing as exc:
        pytest.fail(f"{exc} (these tests need the built libevmesh.so)", pytrace=False)


def test_render_check_accepts_the_example(tmp_path):
    out = tmp_path / "envoy.yaml"
    result = CliRunner().invoke(cli, ["render", str(EXAMPLE), "--check", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == f"{out}: envoy accepts it"


def test_render_check_to_stdout():
    result = CliRunner().invoke(cli, ["render", str(EXAMPLE), "--check"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\n", 1)[1] == GOLDEN.read_text()


def test_golden_file_is_accepted_by_envoy():
    check_bootstrap_file(GOLDEN)


def test_envoy_rejection_is_one_clean_line(tmp_path):
    """Bypass the spec checks: the module itself must reject the config inside Envoy."""
    boot = render_bootstrap(load_spec(EXAMPLE, native_check=False))
    filters = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
    filters[0]["typed_config"]["filter_config"]["value"]["max_control_line"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(boot, sort_keys=False))
    with pytest.raises(EvmeshError) as info:
        check_bootstrap_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: envoy rejected the config: ")
    assert "\n" not in message and "[critical]" not in message


def test_envoy_schema_error_is_one_clean_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("admin: {port: 1}\n")
    with pytest.raises(EvmeshError) as info:
        check_bootstrap_file(path)
    assert str(info.value).startswith(f"{path}: envoy rejected the config: Protobuf message")
    assert "no such field: 'port'" in str(info.value)
