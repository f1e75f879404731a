"""The CLI: click's CliRunner for behaviour, the installed console script for "never a traceback"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from evmesh import __version__
from evmesh.cli import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "envoy_configs" / "nats-example.yaml"
GOLDEN = REPO / "envoy_configs" / "nats-example.envoy.yaml"
EVMESH = Path(sys.prefix) / "bin" / "evmesh"

BAD = """\
version: 1
brokers:
  - name: nats-main
    protocol: nats
    address: 127.0.0.1:99999
listeners:
  - name: orders
    protocol: mqtt
    port: 14222
    broker: nats-main
    nats:
      acl: {publish: {allow: ["orders.>", "a..b"]}}
"""
BAD_LINES = [
    "{p}:5: brokers[0].address: port 99999 is out of range 1..65535",
    '{p}:8: listeners[0].protocol: unknown protocol "mqtt" (supported: nats, amqp, kafka)',
    '{p}:12: listeners[0].nats.acl.publish.allow[1]: invalid subject pattern "a..b": empty token',
]


@pytest.fixture
def bad_spec(tmp_path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


@pytest.fixture
def no_modules(tmp_path, monkeypatch) -> Path:
    empty = tmp_path / "no-modules"
    empty.mkdir()
    monkeypatch.setenv("EVMESH_MODULES_DIR", str(empty))
    return empty


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output == f"evmesh, version {__version__}\n"


def test_validate_ok_without_native_check():
    result = invoke("validate", "--no-native-check", EXAMPLE)
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"{EXAMPLE}: OK\n", "")


def test_validate_reports_every_problem(bad_spec):
    result = invoke("validate", "--no-native-check", bad_spec)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line.format(p=bad_spec) for line in BAD_LINES]


def test_validate_missing_native_library_says_make_build(no_modules):
    result = invoke("validate", EXAMPLE)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: libevmesh_check.so not found in {no_modules}: run `make build` first "
        "(or skip this check with --no-native-check)\n"
    )


def test_validate_bad_spec_without_native_library_still_lists_problems(bad_spec, no_modules):
    result = invoke("validate", bad_spec)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [line.format(p=bad_spec) for line in BAD_LINES]


def test_validate_unreadable_file(tmp_path):
    result = invoke("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'nope.yaml'}: cannot read spec: No such file or directory\n"


def test_render_to_stdout_notes_default_broker_address():
    result = invoke("render", "--no-native-check", EXAMPLE)
    assert result.exit_code == 0
    assert result.stdout.split("\n", 1)[1] == GOLDEN.read_text()
    assert result.stderr == "note: broker nats-main has no address; rendered at 127.0.0.1:4222 (evmesh run starts one)\n"


def test_render_to_file(tmp_path):
    out = tmp_path / "envoy.yaml"
    result = invoke("render", "--no-native-check", EXAMPLE, "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_text().split("\n", 1)[1] == GOLDEN.read_text()


def test_render_bad_spec(bad_spec):
    result = invoke("render", "--no-native-check", bad_spec)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [line.format(p=bad_spec) for line in BAD_LINES]


def test_render_check_without_module_says_make_build(no_modules):
    result = invoke("render", "--no-native-check", "--check", EXAMPLE)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"error: libevmesh.so not found in {no_modules}: run `make build` first"


def test_run_bad_spec_exits_2_before_starting_anything(bad_spec):
    result = invoke("run", bad_spec)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [line.format(p=bad_spec) for line in BAD_LINES]


@pytest.mark.parametrize("command", ["validate", "render", "run"])
def test_console_script_never_prints_a_traceback(command, bad_spec):
    proc = subprocess.run([EVMESH, command, bad_spec], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [line.format(p=bad_spec) for line in BAD_LINES]


def test_console_script_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nbrokers: [\n")
    proc = subprocess.run([EVMESH, "validate", path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"{path}:3: YAML syntax error: while parsing a flow node expected the node content, but found '<stream end>'\n"
    )
