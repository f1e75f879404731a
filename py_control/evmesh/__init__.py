"""evmesh: the Python control plane of a messaging-aware sidecar on stock Envoy 1.40.0.

Pipeline: mesh spec (YAML) -> frozen models (evmesh.spec) -> Envoy bootstrap (evmesh.render)
-> processes (evmesh.runtime). Test fixtures live in evmesh.testing.
"""

__version__ = "0.1.0"

from .errors import EvmeshError, NativeLibraryMissing, ProcessError, SpecError, SpecIssue
from .render import check_bootstrap_file, render_bootstrap, render_yaml
from .runtime import RunningMesh, free_port, run_mesh, start_envoy, start_mesh, start_nats_server
from .spec import Spec, load_spec, load_spec_data, load_spec_text

__all__ = [
    "EvmeshError", "NativeLibraryMissing", "ProcessError", "RunningMesh", "Spec", "SpecError", "SpecIssue",
    "__version__", "check_bootstrap_file", "free_port", "load_spec", "load_spec_data", "load_spec_text",
    "render_bootstrap", "render_yaml", "run_mesh", "start_envoy", "start_mesh", "start_nats_server",
]
