"""Mesh spec: frozen models, the validating loader, and the native filter-config check."""

from .loader import load_spec, load_spec_data, load_spec_text
from .models import (
    Acl,
    AclRule,
    Address,
    Admin,
    Broker,
    Listener,
    NatsOptions,
    Spec,
    SubjectGroup,
)
from .subjects import subject_pattern_problem

__all__ = [
    "Acl", "AclRule", "Address", "Admin", "Broker", "Listener", "NatsOptions", "Spec",
    "SubjectGroup", "load_spec", "load_spec_data", "load_spec_text", "subject_pattern_problem",
]
