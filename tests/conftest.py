pytest_plugins = ["evmesh.testing.fixtures", "evmesh.testing.kafka_fixtures"]
