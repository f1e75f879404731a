"""Mesh spec: frozen models, the validating loader, and the native filter-config check."""

from .kafka_topics import kafka_topic_pattern_problem
from .loader import load_spec, load_spec_data, load_spec_text
from .models import (
    Acl,
    AclRule,
    Address,
    Admin,
    AmqpAcl,
    AmqpOptions,
    Broker,
    DurabilityRule,
    ExchangeGroup,
    KafkaAcl,
    KafkaNode,
    KafkaOptions,
    Listener,
    NatsOptions,
    PublishAclRule,
    PublishRule,
    QueueGroup,
    QuotaRule,
    Spec,
    SubjectGroup,
    ThrottleRule,
    TopicGroup,
)
from .subjects import subject_pattern_problem
from .topics import topic_pattern_problem

__all__ = [
    "Acl", "AclRule", "Address", "Admin", "AmqpAcl", "AmqpOptions", "Broker", "DurabilityRule", "ExchangeGroup",
    "KafkaAcl", "KafkaNode", "KafkaOptions", "Listener", "NatsOptions", "PublishAclRule", "PublishRule",
    "QueueGroup", "QuotaRule", "Spec", "SubjectGroup", "ThrottleRule", "TopicGroup", "kafka_topic_pattern_problem",
    "load_spec", "load_spec_data", "load_spec_text", "subject_pattern_problem", "topic_pattern_problem",
]
