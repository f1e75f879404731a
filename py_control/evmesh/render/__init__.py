"""Spec -> Envoy bootstrap, and `envoy --mode validate` on the result."""

from .bootstrap import broker_addresses, defaulted_brokers, render_bootstrap, render_yaml
from .check import check_bootstrap_file

__all__ = ["broker_addresses", "check_bootstrap_file", "defaulted_brokers", "render_bootstrap", "render_yaml"]
