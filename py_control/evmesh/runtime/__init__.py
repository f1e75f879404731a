"""Processes: free ports, embedded brokers, Envoy, and a whole running mesh."""

from .embedded_amqp import EmbeddedRabbitMQ, start_embedded_rabbitmq
from .envoy import Envoy, start_envoy
from .kafka import KafkaCluster, KafkaNode, Tansu, ensure_kafka_jars, start_kafka_cluster, start_tansu
from .mesh import ChildDied, RunningMesh, run_mesh, start_mesh
from .nats import NatsServer, start_nats_server
from .ports import Cancelled, accepts_tcp, free_port, port_is_free, wait_until
from .process import ManagedProcess
from .rabbitmq import RabbitMQ, rabbitmq_available, start_rabbitmq

__all__ = [
    "Cancelled", "ChildDied", "EmbeddedRabbitMQ", "Envoy", "KafkaCluster", "KafkaNode", "ManagedProcess",
    "NatsServer", "RabbitMQ", "RunningMesh", "Tansu", "accepts_tcp", "ensure_kafka_jars", "free_port",
    "port_is_free", "rabbitmq_available", "run_mesh", "start_embedded_rabbitmq", "start_envoy", "start_kafka_cluster",
    "start_mesh", "start_nats_server", "start_rabbitmq", "start_tansu", "wait_until",
]
