"""Helpers and pytest fixtures for tests against real Envoy and real brokers.

Enable the fixtures with `pytest_plugins = ["evmesh.testing.fixtures"]` in a conftest.py.
"""

from ..runtime.ports import free_port
from .mesh import MeshHandle, start_mesh_for_spec

__all__ = ["MeshHandle", "free_port", "start_mesh_for_spec"]
