"""AMQP topic pattern syntax (routing keys and queue names in the amqp filter's ACLs and metric groups):
words separated by '.', '*' matches one word, '#' zero or more words; wildcards must be whole words.
A pattern, like an exchange name, is an AMQP short string: at most 255 bytes (UTF-8)."""

from __future__ import annotations

MAX_SHORT_STRING = 255


def short_string_problem(text: str) -> str | None:
    """None if `text` fits an AMQP short string, else what is wrong with it."""
    size = len(text.encode("utf-8"))
    return f"longer than {MAX_SHORT_STRING} bytes ({size})" if size > MAX_SHORT_STRING else None


def topic_pattern_problem(pattern: str) -> str | None:
    """None if `pattern` is a valid AMQP topic pattern, else what is wrong with it."""
    problem = short_string_problem(pattern)
    if problem:
        return problem
    for word in pattern.split(".") if pattern else ():
        if len(word) > 1 and ("*" in word or "#" in word):
            return "'*' and '#' must be whole words"
    return None
