import pytest

from evmesh.spec import subject_pattern_problem
from evmesh.spec.loader import native_problem_path


@pytest.mark.parametrize("pattern", ["a", "orders.>", "orders.*.new", "*", ">", "*.*.>", "$JS.API.>", "_INBOX.abc"])
def test_valid_patterns(pattern):
    assert subject_pattern_problem(pattern) is None


@pytest.mark.parametrize(
    "pattern, problem",
    [
        ("", "empty token"),
        ("a..b", "empty token"),
        (".a", "empty token"),
        ("a.", "empty token"),
        ("a b", "contains whitespace"),
        ("a\tb", "contains whitespace"),
        ("a*", "'*' must be a whole token"),
        ("a.*b", "'*' must be a whole token"),
        ("a.>.b", "'>' must be the last token"),
        (">.a", "'>' must be the last token"),
        ("a.b>", "'>' must be a whole token"),
    ],
)
def test_invalid_patterns(pattern, problem):
    assert subject_pattern_problem(pattern) == problem


@pytest.mark.parametrize(
    "problem, expected",
    [
        ('acl.publish.allow[1]: invalid subject pattern "a..b": empty token',
         ("listeners[2].nats.acl.publish.allow[1]", 'invalid subject pattern "a..b": empty token')),
        ("max_payload: out of range", ("listeners[2].nats.max_payload", "out of range")),
        ("stat_prefix: too long", ("listeners[2].name", "too long")),
        ("config is not a JSON object", ("listeners[2].nats", "config is not a JSON object")),
        ("invalid JSON: unexpected end", ("listeners[2].nats", "invalid JSON: unexpected end")),
        ("(config): must be an object, got a list", ("listeners[2].nats", "must be an object, got a list")),
        ('filter_name: unknown filter "kafka" (known: nats)', ("listeners[2].protocol", 'unknown filter "kafka" (known: nats)')),
    ],
)
def test_native_problem_path(problem, expected):
    assert native_problem_path(2, "nats", problem) == expected
