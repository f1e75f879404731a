"""The C++ config parser through libevmesh_check.so (needs `make build`; fails, never skips, without it)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from evmesh import SpecError, load_spec, load_spec_text
from evmesh.errors import NativeLibraryMissing
from evmesh.spec.native import EXPECTED_ABI, checker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "envoy_configs" / "nats-example.yaml"


@pytest.fixture
def native():
    try:
        return checker()
    except NativeLibraryMissing as exc:
        pytest.fail(f"{exc} (these tests need the built libevmesh_check.so)", pytrace=False)


def test_abi_version(native):
    assert native.abi_version() == EXPECTED_ABI


def test_accepts_the_example(native):
    spec = load_spec(EXAMPLE, native_check=False)
    assert native.check("nats", spec.listeners[0].filter_json()) is None
    assert load_spec(EXAMPLE) == spec


@pytest.mark.parametrize(
    "config, field",
    [
        ({"stat_prefix": "x", "max_control_line": 8}, "max_control_line"),
        ({"stat_prefix": "x", "max_payload": 0}, "max_payload"),
        ({"stat_prefix": "x", "acl": {"publish": {"allow": ["a..b"]}}}, "acl.publish.allow[0]"),
        ({"stat_prefix": "x", "subjects": [{"name": "other", "pattern": "a"}]}, "subjects[0].name"),
        ({"stat_prefix": "x", "bogus": 1}, "bogus"),
        ({}, "stat_prefix"),
    ],
)
def test_rejections_name_the_field(native, config, field):
    problem = native.check("nats", config)
    assert problem is not None and problem.startswith(f"{field}: "), problem


def test_unknown_filter_name(native):
    problem = native.check("mqtt", {"stat_prefix": "x"})
    assert problem is not None and problem.startswith("filter_name: ")


def test_native_rejection_maps_to_spec_path_and_line(native):
    """1025 allow patterns pass the Python checks; the C++ parser allows at most 1024 per list."""
    patterns = ", ".join(f'"p{i}"' for i in range(1025))
    text = textwrap.dedent(f"""\
        version: 1
        brokers: [{{name: b, protocol: nats}}]
        listeners:
          - name: l
            protocol: nats
            port: 14222
            broker: b
            nats:
              acl:
                publish:
                  allow: [{patterns}]
    """)
    assert load_spec_text(text, native_check=False)  # fine for Python
    with pytest.raises(SpecError) as info:
        load_spec_text(text, source="spec.yaml")
    [issue] = info.value.issues
    assert (issue.line, issue.path) == (11, "listeners[0].nats.acl.publish.allow")
    assert str(issue).startswith("spec.yaml:11: listeners[0].nats.acl.publish.allow: ")
