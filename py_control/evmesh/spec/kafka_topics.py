"""Kafka topic patterns (ACLs, metric groups, durability and quota rules of the kafka filter).

A Kafka topic name is 1-249 characters of A-Z a-z 0-9 . _ -; a pattern may add '*' (any run of
characters, none included) and '?' (exactly one character). No wildcard: the exact name; one trailing
'*' only: a prefix; anything else: a glob.
"""

from __future__ import annotations

import re

MAX_TOPIC_LENGTH = 249
_PATTERN_RE = re.compile(r"[A-Za-z0-9._*?-]+")


def topic_pattern_kind(pattern: str) -> str:
    """"exact", "prefix" or "glob" (for a valid pattern)."""
    if "*" not in pattern and "?" not in pattern:
        return "exact"
    if pattern.endswith("*") and "*" not in pattern[:-1] and "?" not in pattern:
        return "prefix"
    return "glob"


def kafka_topic_pattern_problem(pattern: str) -> str | None:
    """None if `pattern` is a valid Kafka topic pattern, else what is wrong with it."""
    if not pattern:
        return "must not be empty"
    if len(pattern) > MAX_TOPIC_LENGTH:
        return f"longer than {MAX_TOPIC_LENGTH} characters ({len(pattern)})"
    if not _PATTERN_RE.fullmatch(pattern):
        bad = next(c for c in pattern if not _PATTERN_RE.fullmatch(c))
        return f"{bad!r} is not allowed: use A-Z a-z 0-9 . _ - and the wildcards * ?"
    return None
