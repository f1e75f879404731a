"""The `evmesh` command: thin click commands, each calling one library function.

Domain errors become one line per problem on stderr and exit code 2; never a traceback.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from .. import __version__
from ..errors import EvmeshError, ProcessError, SpecError
from ..render import check_bootstrap_file, defaulted_brokers, render_yaml
from ..render.bootstrap import XDS_APIS, default_placement, render_ads_yaml
from ..runtime import ChildDied, run_mesh
from ..spec import load_spec

EXIT_ERROR = 2
EXIT_CHILD_DIED = 1


def _fail(exc: EvmeshError, code: int = EXIT_ERROR) -> None:
    if isinstance(exc, SpecError):
        for issue in exc.issues:
            click.echo(str(issue), err=True)
    else:
        click.echo(f"error: {exc.details() if isinstance(exc, ProcessError) else exc}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evmesh")
def cli() -> None:
    """evmesh: a messaging-aware sidecar on stock Envoy (NATS now; Kafka and AMQP later)."""


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--no-native-check", is_flag=True, help="Skip the C++ filter-config check (libevmesh_check.so).")
def validate(spec: str, no_native_check: bool) -> None:
    """Validate a mesh spec; print SPEC: OK or one line per problem."""
    try:
        load_spec(spec, native_check=not no_native_check)
    except EvmeshError as exc:
        _fail(exc)
    click.echo(f"{spec}: OK")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the bootstrap here (default: stdout).")
@click.option("--check", is_flag=True, help="Also run `envoy --mode validate` on the result.")
@click.option("--no-native-check", is_flag=True, help="Skip the C++ filter-config check (libevmesh_check.so).")
@click.option("--xds", "xds_address", metavar="HOST:PORT",
              help="Render a bootstrap managed by the ADS server at HOST:PORT (`evmesh xds serve`): admin, node and ADS only.")
@click.option("--node-id", default="evmesh-sidecar", show_default=True, help="With --xds: the Envoy node id.")
@click.option("--node-cluster", default="evmesh", show_default=True,
              help="With --xds: the Envoy node cluster (the server's snapshot key).")
@click.option("--xds-api", type=click.Choice(sorted(XDS_APIS)), default="sotw", show_default=True,
              help="With --xds: state of the world (GRPC) or DELTA_GRPC.")
def render(spec: str, output: str | None, check: bool, no_native_check: bool, xds_address: str | None,
           node_id: str, node_cluster: str, xds_api: str) -> None:
    """Render a mesh spec into an Envoy bootstrap (YAML)."""
    try:
        model = load_spec(spec, native_check=not no_native_check)
        if xds_address:
            text = render_ads_yaml(model, xds_address, node_id, node_cluster, xds_api)
        else:
            text = render_yaml(model)
        for b in [] if xds_address else defaulted_brokers(model):
            click.echo(f"note: broker {b.name} has no address; rendered at {default_placement(b)} "
                       "(evmesh run starts one)", err=True)
        if output:
            Path(output).write_text(text)
        if check:
            if output:
                check_bootstrap_file(output)
            else:
                with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="evmesh-render-") as tmp:
                    tmp.write(text)
                    tmp.flush()
                    check_bootstrap_file(tmp.name)
    except EvmeshError as exc:
        _fail(exc)
    if not output:
        click.echo(text, nl=False)
    elif check:
        click.echo(f"{output}: envoy accepts it", err=True)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--work-dir", type=click.Path(file_okay=False), help="Logs, rendered config, broker data (default: a new temp dir).")
def run(spec: str, work_dir: str | None) -> None:
    """Start embedded brokers and Envoy for a spec; serve until SIGINT/SIGTERM."""

    def echo(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    try:
        model = load_spec(spec)
        code = run_mesh(model, Path(work_dir) if work_dir else None, echo)
    except ChildDied as exc:
        _fail(exc, EXIT_CHILD_DIED)
    except EvmeshError as exc:
        _fail(exc)
    sys.exit(code)


@cli.group()
def xds() -> None:
    """The xDS control plane: serve a spec's listeners and clusters over ADS."""


@xds.command("serve")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=18000, show_default=True,
              help="gRPC port (0: a free port, printed at start).")
@click.option("--node-key", default="evmesh", show_default=True,
              help="The node cluster (or, with --key-by id, node id) that gets this spec (`render --xds --node-cluster`).")
@click.option("--key-by", type=click.Choice(["cluster", "id"]), default="cluster", show_default=True,
              help="Key snapshots by node cluster or by node id.")
@click.option("--poll-interval", type=click.FloatRange(0.05, 60), default=0.25, show_default=True,
              help="Seconds between checks of the spec file.")
@click.option("--no-native-check", is_flag=True, help="Skip the C++ filter-config check (libevmesh_check.so).")
@click.option("--policy-port", type=click.IntRange(0, 65535), default=None,
              help="Live-policy server port on 127.0.0.1 (default: --port + 1, a free port when --port is 0; "
                   "0: no live policy, policies inline in the listeners).")
@click.option("--discovery-interval", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True,
              help="Seconds between Metadata requests to kafka brokers whose nodes the spec does not list.")
@click.option("-q", "--quiet", is_flag=True, help="Log only NACKs and problems, not every push and ACK.")
def xds_serve(spec: str, host: str, port: int, node_key: str, key_by: str, poll_interval: float,
              no_native_check: bool, policy_port: int | None, discovery_interval: float, quiet: bool) -> None:
    """Serve SPEC over ADS; re-push when the file changes (a bad edit is reported, not pushed)."""
    import os

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC core's own log lines would double our one-line errors
    from ..xds.serve import run_serve

    def echo(line: str) -> None:
        click.echo(line, err=True)

    try:
        if policy_port is None:
            policy_port = port + 1 if 0 < port < 65535 else 0  # 0 for the library: a free port
        elif policy_port == 0:
            policy_port = None  # disabled
        code = run_serve(spec, host, port, node_key, key_by, poll_interval, not no_native_check, quiet, echo,
                         policy_port, discovery_interval)
    except EvmeshError as exc:
        _fail(exc)
    sys.exit(code)


def main() -> None:
    cli(prog_name="evmesh")
