pytest_plugins = ["evmesh.testing.fixtures"]
