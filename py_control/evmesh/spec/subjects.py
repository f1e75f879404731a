"""NATS subject pattern syntax: tokens separated by '.', '*' matches one whole token, '>' one or
more trailing tokens and only as the last token; no empty tokens, no whitespace."""

from __future__ import annotations


def subject_pattern_problem(pattern: str) -> str | None:
    """None if `pattern` is a valid NATS subject pattern, else what is wrong with it."""
    if any(c.isspace() for c in pattern):
        return "contains whitespace"
    tokens = pattern.split(".")
    for i, tok in enumerate(tokens):
        if tok == "":
            return "empty token"
        if "*" in tok and tok != "*":
            return "'*' must be a whole token"
        if ">" in tok:
            if tok != ">":
                return "'>' must be a whole token"
            if i != len(tokens) - 1:
                return "'>' must be the last token"
    return None
