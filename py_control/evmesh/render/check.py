"""`envoy --mode validate` on a rendered bootstrap, with the evmesh module on the search path."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ..errors import EvmeshError
from ..locate import envoy_binary, envoy_module_path

_MARKER = re.compile(r"error initializing configuration '[^']*': ")
VALIDATE_TIMEOUT_S = 60


def envoy_error_text(output: str) -> str:
    """The one-line reason from Envoy's output (its log lines carry time, thread and source)."""
    m = _MARKER.search(output)
    if m:
        return " ".join(output[m.end():].split())
    lines = [ln for ln in output.splitlines() if ln.strip()]
    last = lines[-1] if lines else "no output"
    return " ".join(re.sub(r"^(\[[^\]]*\])+\s*", "", last).split())


def check_bootstrap_file(path: str | Path) -> None:
    """Raise EvmeshError naming Envoy's reason if Envoy rejects the bootstrap at `path`."""
    module = envoy_module_path()
    env = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=str(module.parent))
    cmd = [str(envoy_binary()), "--mode", "validate", "-c", str(path), "--log-level", "warn"]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EvmeshError(f"envoy --mode validate on {path} did not finish in {VALIDATE_TIMEOUT_S}s") from None
    if proc.returncode != 0:
        raise EvmeshError(f"{path}: envoy rejected the config: {envoy_error_text(proc.stdout + proc.stderr)}")
