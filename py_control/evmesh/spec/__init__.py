"""Mesh spec: frozen models, the validating loader, and the native filter-config check."""

from .loader import load_spec, load_spec_data, load_spec_text
from .models import (
    Acl,
    AclRule,
    Address,
    Admin,
    AmqpAcl,
    AmqpOptions,
    Broker,
    ExchangeGroup,
    Listener,
    NatsOptions,
    PublishAclRule,
    PublishRule,
    QueueGroup,
    Spec,
    SubjectGroup,
    ThrottleRule,
)
from .subjects import subject_pattern_problem
from .topics import topic_pattern_problem

__all__ = [
    "Acl", "AclRule", "Address", "Admin", "AmqpAcl", "AmqpOptions", "Broker", "ExchangeGroup", "Listener",
    "NatsOptions", "PublishAclRule", "PublishRule", "QueueGroup", "Spec", "SubjectGroup", "ThrottleRule",
    "load_spec", "load_spec_data", "load_spec_text", "subject_pattern_problem", "topic_pattern_problem",
]
